"""Profiler traces of each case, laid out for TensorBoard, and the top operations read back from them."""
from __future__ import annotations

import os
import shutil
import warnings

from ..core.files import staged_folder
from ..engines import current as engine
from ..engines.shared import TOP_OPS, top_ops, xplane_files

TRACE_STEPS = 3
TRACE_SECONDS = 0.5  # slow steps get fewer traced steps (one at least): on a CPU a VGG-19 step takes seconds


def trace_group(case) -> tuple:
    """The cases one trace stands for: a model's step in a mode on a runtime and scale, traced at the first of them
    a run measures (float32 without XLA at the first batch size, where the run has it). A trace of every step took 8%
    of a Zen 3 default run; `--trace-every-case` traces each case."""
    return case.pass_index, case.model, case.mode, case.runtime, case.replicas, case.workers


class Tracer:
    """Writes `<root>/<run>/<case>/plugins/profile/<timestamp>/<host>.xplane.pb`.

    A trace is written into a staging folder beside `root` and moved into place when complete, so an
    interrupted run never leaves a half-written case under `root` for TensorBoard to list. The first case of each
    trace_group in the first pass is traced, or every case of that pass with `every_case`.

    In a cluster each worker gives a `worker` name (host and index), and a trace goes into a session folder named
    after the run as `<worker>.xplane.pb`. Only the chief runs the profiler (`profiles`); the others run the traced
    steps unprofiled, which a scaled case's all-reduce needs. With two workers profiling, TensorFlow 2.21's profiler
    crashed the other worker (a double free, SIGABRT) in 3 of 4 trials of 50-200 traces, and in a CI run; with the
    chief's alone, in none of 950.
    """

    def __init__(self, root: str, run_name: str, steps: int = TRACE_STEPS, every_case: bool = False,
                 worker: str | None = None, profiles: bool = True):
        self.root, self.run_name, self.steps = root, run_name, steps
        self.every_case, self.worker, self.profiles = every_case, worker, profiles
        self.traced = set()  # trace groups traced
        self.staging = os.path.join(os.path.dirname(os.path.abspath(root)) or ".",
                                    f".{os.path.basename(os.path.abspath(root))}-staging")
        self.staged_run = os.path.join(self.staging, run_name + (f"-{worker}" if worker else ""))

    def takes(self, case) -> bool:
        """Whether `case` is traced (its group is then taken)."""
        if case.pass_index != 1 or not (self.every_case or trace_group(case) not in self.traced):
            return False
        self.traced.add(trace_group(case))
        return True

    def steps_for(self, step_seconds: float) -> int:
        return max(1, min(self.steps, int(TRACE_SECONDS / step_seconds))) if step_seconds > 0 else self.steps

    def capture(self, case, step, args, steps: int | None = None) -> dict:
        """Trace `steps` steps (default `self.steps`) after the timed rounds."""
        steps = steps or self.steps
        if not self.profiles:
            for _ in range(steps):
                engine().wait(step(*args))
            return {"trace_dir": None, "trace_steps": steps, "top_ops": []}

        def record(staged):
            engine().record_trace(staged, case.mode, step, args, steps)
            return {"trace_steps": steps, "top_ops": engine().read_top_ops(staged, steps, TOP_OPS)}
        return self._written(case, "trace", record)

    def capture_runtime(self, case, runtime, path: str, x, steps: int, threads: int) -> dict:
        """A deployment runtime's own per-op profile of `steps` inferences, its file in the case's trace folder
        (ONNX Runtime's Chrome-trace JSON, OpenVINO's counters); a runtime without one says so."""
        if runtime.NO_PROFILE:
            return {"trace_dir": None, "top_ops": [], "profile_note": runtime.NO_PROFILE}

        def record(staged):
            rows = runtime.profile(path, threads, x, steps, staged)
            return {"trace_steps": steps, "profile_files": sorted(os.listdir(staged)),
                    "top_ops": top_ops([(name, kind, self_us, "CPU") for name, kind, self_us in rows], steps, TOP_OPS)}
        return self._written(case, "profile", record)

    def _written(self, case, what: str, record) -> dict:
        """`record(staged folder) -> its figures`, written in the staging folder and moved into place when whole; a
        failure is a warning and a `trace_error`, never fatal."""
        final = os.path.join(self.root, self.run_name, case.id)
        place = {"place": self._place_worker_trace} if self.worker else {}
        try:
            with staged_folder(final, os.path.join(self.staged_run, case.id), **place) as staged:
                found = record(staged)
        except Exception as err:  # noqa: BLE001  (any fault of a trace must not fail the measured case)
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            warnings.warn(f"{case.id}: no {what} written ({message})", RuntimeWarning, stacklevel=3)
            return {"trace_dir": None, "trace_error": message, "top_ops": []}
        return {"trace_dir": final, **found}

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

