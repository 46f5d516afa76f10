"""Profiler traces of each case, laid out for TensorBoard, and the top operations read back from them."""
from __future__ import annotations

import glob
import json
import os
import shutil
import warnings

import tensorflow as tf

from .device import sync

TRACE_STEPS = 3
TRACE_SECONDS = 0.5  # slow steps get fewer traced steps (one at least): on a CPU a VGG-19 step takes seconds
TOP_OPS = 10


class Tracer:
    """Writes `<root>/<run>/<case>/plugins/profile/<timestamp>/<host>.xplane.pb`.

    A trace is written into a staging folder beside `root` and moved into place when complete, so an
    interrupted run never leaves a half-written case under `root` for TensorBoard to list. A step is traced at the
    first batch size it runs (the others run the same graph) unless `every_batch_size`.

    The workers of a cluster each give a `worker` name (host and index): their traces of a case go into one session
    folder, named after the run, as `<worker>.xplane.pb`, which TensorBoard shows as that session's hosts.
    """

    def __init__(self, root: str, run_name: str, steps: int = TRACE_STEPS, every_batch_size: bool = False,
                 worker: str | None = None):
        self.root, self.run_name, self.steps = root, run_name, steps
        self.every_batch_size, self.worker = every_batch_size, worker
        self.staging = os.path.join(os.path.dirname(os.path.abspath(root)) or ".",
                                    f".{os.path.basename(os.path.abspath(root))}-staging")
        self.staged_run = os.path.join(self.staging, run_name + (f"-{worker}" if worker else ""))

    def steps_for(self, step_seconds: float) -> int:
        return max(1, min(self.steps, int(TRACE_SECONDS / step_seconds))) if step_seconds > 0 else self.steps

    def capture(self, case, step, args, steps: int | None = None) -> dict:
        """Trace `steps` steps (default `self.steps`) after the timed rounds; a failure is a warning and a
        `trace_error`, never fatal."""
        steps = steps or self.steps
        staged = os.path.join(self.staged_run, case.id)
        final = os.path.join(self.root, self.run_name, case.id)
        try:
            shutil.rmtree(staged, ignore_errors=True)
            os.makedirs(staged)
            self._record(staged, case.mode, step, args, steps)
            for path in xplane_files(staged):
                keep_programs_that_ran(path)
            top_ops = read_top_ops(staged, steps)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            if self.worker:
                self._place_worker_trace(staged, final)
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(staged, final)
        except Exception as err:  # noqa: BLE001  (any fault of the trace must not fail the measured case)
            shutil.rmtree(staged, ignore_errors=True)
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            warnings.warn(f"{case.id}: no trace written ({message})", RuntimeWarning, stacklevel=2)
            return {"trace_dir": None, "trace_error": message, "top_ops": []}
        return {"trace_dir": final, "trace_steps": steps, "top_ops": top_ops}

    def _place_worker_trace(self, staged: str, final: str) -> None:
        """Move this worker's trace beside the other workers' of the same case, each file whole."""
        session = os.path.join(final, "plugins", "profile", self.run_name)
        os.makedirs(session, exist_ok=True)
        for path in xplane_files(staged):
            os.replace(path, os.path.join(session, f"{self.worker}.xplane.pb"))
        shutil.rmtree(staged, ignore_errors=True)

    def close(self) -> None:
        """Remove this run's staging folder, and the staging folder itself once no other run is using it."""
        shutil.rmtree(self.staged_run, ignore_errors=True)
        try:
            os.rmdir(self.staging)
        except OSError:  # absent, or another run's traces are being staged
            pass

    @staticmethod
    def _record(logdir: str, mode: str, step, args, steps: int) -> None:
        tf.profiler.experimental.start(logdir)
        try:
            for i in range(steps):
                with tf.profiler.experimental.Trace(mode, step_num=i, _r=1):
                    step(*args)
                    sync()
        finally:
            tf.profiler.experimental.stop()


def xplane_files(logdir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))


def keep_programs_that_ran(path: str) -> None:
    """Drop the HLO of XLA programs that did not run in this trace from the profiler's metadata plane.

    The profiler writes the HLO of every XLA program still loaded in the process into every trace, and TensorFlow
    keeps them all loaded: late in a run of the zoo each trace carried 25 stale programs (19 MB), took 4 s to read
    and the run's traces took 1.7 GB.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    metadata = [plane for plane in space.planes if plane.name == "/host:metadata"]
    if not metadata:
        return
    ran = set()
    for plane in space.planes:
        program_stats = {key for key, stat in plane.stat_metadata.items() if stat.name == "program_id"}
        stats = [stat for line in plane.lines for event in line.events for stat in event.stats]
        stats += [stat for event in plane.event_metadata.values() for stat in event.stats]
        ran.update(stat.int64_value or stat.uint64_value for stat in stats if stat.metadata_id in program_stats)
    programs = metadata[0].event_metadata
    for program_id in [key for key in programs if key not in ran]:
        del programs[program_id]
    with open(path, "wb") as f:
        f.write(space.SerializeToString())


def read_top_ops(logdir: str, steps: int, limit: int = TOP_OPS) -> list[dict]:
    """The operations with the most self time per step, from the profiler's own framework_op_stats tool."""
    from xprof.convert.raw_to_tool_data import xspace_to_tool_data

    paths = xplane_files(logdir)
    if not paths:
        raise FileNotFoundError(f"the profiler wrote no .xplane.pb under {logdir}")
    data = xspace_to_tool_data(paths, "framework_op_stats", {})
    table = json.loads(data[0] if isinstance(data, tuple) else data)
    table = table[0] if isinstance(table, list) else table
    columns = [col["id"] for col in table["cols"]]
    rows = [dict(zip(columns, (cell.get("v") for cell in row["c"]))) for row in table["rows"]]
    rows = [r for r in rows if r["type"] != "IDLE" and r["total_self_time"] > 0]
    on_device = [r for r in rows if r["host_or_device"] == "Device"]
    rows = on_device or rows  # on a GPU the device's ops are the step time; on a CPU the host's are
    total = sum(r["total_self_time"] for r in rows) or 1.0
    rows.sort(key=lambda r: r["total_self_time"], reverse=True)
    return [{"name": r["operation"], "type": r["type"], "self_time_us": r["total_self_time"] / steps,
             "share": r["total_self_time"] / total, "where": r["host_or_device"]} for r in rows[:limit]]
