"""Saved runs: find them, read them, check them, and flatten each case into one record (no TensorFlow here)."""
from __future__ import annotations

import glob
import json
import math
import os
import re
from dataclasses import dataclass

from . import journal
from .cli import UsageError
from .scale import scaling
from .stats import latency_summary_ms, robust_sigma, t95

DEFAULT_STORAGE = ".benchmarks"
# Every metric of a case record, in report order; a run saved by an older suite may lack some (shown as "-").
FIELDS = ("run", "backend", "device", "case", "model", "family", "mode", "batch_size", "precision", "xla",
          "input_shape", "params", "trainable_params", "depth", "macs_per_sample", "flops_per_sample",
          "activation_bytes_per_sample", "flops_per_step", "throughput", "median_error", "target_error",
          "reached_target", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_min_ms",
          "latency_max_ms", "latency_stdev_ms", "rounds", "stop_reason", "cv", "compile_s", "achieved_tflops", "mfu",
          "peak_memory_bytes", "peak_memory_note", "machine_speed_flops", "trace_dir", "replicas", "workers",
          "global_batch", "all_reduce", "scaling")
OVERHEAD_GROUP = "harness overhead"  # bench/test_overhead.py


@dataclass(frozen=True)
class Run:
    path: str
    name: str
    machine: dict  # machine_info["cnnbench"], {} for an older run
    commit: dict
    datetime: str
    cases: list[dict]  # flat records, keys from FIELDS
    skipped: list[dict]
    overhead: dict | None = None  # bench/test_overhead.py's extra_info, when the run measured it
    noise: "RunNoise | None" = None  # how far its cases may move between runs of the same code (load_run sets it)
    time_s: dict | None = None  # where the session's time went, by phase (bench.timing.PHASES, other, total)
    plan: dict | None = None  # its time budget, what fell outside and how far the estimates were off
    incomplete: dict | None = None  # {"reason", "finished", "planned"} of a run cut off; None when complete
    scaled: tuple = ()  # cases on several replicas or workers (their one-replica baselines are in `cases`)


def natural_key(text) -> list:
    """resnet20 before resnet110: numbers in names sort as numbers."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text))]


def find_runs(storage: str = DEFAULT_STORAGE) -> list[str]:
    """Saved runs under pytest-benchmark's storage, oldest first."""
    return sorted(glob.glob(os.path.join(storage, "*", "*.json")), key=os.path.getmtime)


def resolve_ref(ref: str, storage: str = DEFAULT_STORAGE) -> str:
    """A path, or a run number as pytest-benchmark names them ('0003' or '3')."""
    if os.path.exists(ref) or os.sep in ref or ref.endswith((".json", ".jsonl")):
        return ref
    if ref.isdigit():
        found = [p for p in find_runs(storage) if os.path.basename(p).split("_", 1)[0] == f"{int(ref):04d}"]
        if found:
            return found[-1]
    if os.path.exists(journal.path_for(storage, ref)):  # a run name: its journal
        return journal.path_for(storage, ref)
    raise UsageError(f"no saved run {ref!r} under {storage}/ (give a path, a run number such as 0003 or a run name)")


def _run_name_of(path: str) -> str | None:
    try:
        with open(path) as f:
            return (json.load(f).get("cnnbench") or {}).get("run_name")
    except (OSError, ValueError, AttributeError):
        return None


def unsaved_journals(storage: str = DEFAULT_STORAGE) -> list[str]:
    """Journals of runs that never saved their JSON (killed, or run without --benchmark-autosave), oldest first."""
    saved = {_run_name_of(path) for path in find_runs(storage)}
    return [path for path in journal.journals(storage)
            if os.path.basename(path)[:-len(".jsonl")] not in saved]


def newest_run(storage: str = DEFAULT_STORAGE) -> str:
    runs = sorted(find_runs(storage) + unsaved_journals(storage), key=os.path.getmtime)
    if not runs:
        raise UsageError(f"no saved run under {storage}/; make one with `pytest bench/ --benchmark-autosave`")
    return runs[-1]


def backend_of(machine: dict) -> str:
    """The Keras backend of a run from its machine record: a run saved before it was recorded ran on TensorFlow."""
    return machine.get("keras_backend") or "tensorflow"


def companion_runs(run: "Run", storage: str = DEFAULT_STORAGE) -> list[str]:
    """The newest saved run of each other backend on the same device and commit as `run`: a run measures one backend
    (Keras binds one per process), and the report puts them side by side."""
    taken, found = {backend_of(run.machine)}, []
    for path in reversed(find_runs(storage)):
        try:
            with open(path) as f:
                data = json.load(f)
            machine = (data.get("machine_info") or {}).get("cnnbench") or {}
            other = backend_of(machine)
            same = (machine.get("device") == run.machine.get("device")
                    and (data.get("commit_info") or {}).get("id") == run.commit.get("id"))
        except (OSError, ValueError, AttributeError):
            continue
        if other not in taken and same:
            taken.add(other)
            found.append(path)
    return found


def _flatten(bench: dict, run_name: str, device: str, backend: str) -> dict:
    info = bench.get("extra_info", {})
    record = {key: info.get(key) for key in FIELDS}
    record["backend"] = info.get("backend") or backend
    latency = info.get("latency_ms") or {}
    for stat in ("p50", "p90", "p99", "mean", "min", "max", "stdev"):
        record[f"latency_{stat}_ms"] = latency.get(stat)
    record["run"] = run_name
    record["device"] = info.get("device") or device
    record["family"] = info.get("family") or info.get("model")  # a run saved before families: each model its own
    record["top_ops"] = info.get("top_ops") or []
    return record


def _case_record(passes: list[dict], run_name: str, device: str, backend: str) -> dict:
    """One record per case. A case timed in several passes gets the geometric mean of its passes' medians (each pass
    weighs the same, however many rounds its share of time bought), and percentiles of the pooled rounds."""
    passes = sorted(passes, key=lambda b: b["extra_info"].get("pass", 1))
    record = _flatten(passes[0], run_name, device, backend)
    infos = [b["extra_info"] for b in passes]
    record["pass_p50_ms"] = [(info.get("latency_ms") or {}).get("p50") for info in infos]
    record["machine_speeds_flops"] = [info["machine_speed_flops"] for info in infos if info.get("machine_speed_flops")]
    if len(infos) < 2 or not all(info.get("round_ms") for info in infos) or not all(record["pass_p50_ms"]):
        return record
    latency = latency_summary_ms([t / 1e3 for info in infos for t in info["round_ms"]])
    for stat in ("p90", "p99", "mean", "min", "max", "stdev"):
        record[f"latency_{stat}_ms"] = latency[stat]
    p50 = math.exp(sum(math.log(p) for p in record["pass_p50_ms"]) / len(infos))
    ceiling = record["achieved_tflops"] / record["mfu"] if record.get("mfu") and record.get("achieved_tflops") else None
    global_batch = record.get("global_batch") or record["batch_size"]
    record.update(latency_p50_ms=p50, rounds=latency["samples"], throughput=global_batch / (p50 / 1e3),
                  cv=latency["stdev"] / latency["mean"], median_error=None, reached_target=False)
    if record.get("flops_per_step"):
        record["achieved_tflops"] = record["flops_per_step"] / (p50 / 1e3) / 1e12
        record["mfu"] = record["achieved_tflops"] / ceiling if ceiling else record.get("mfu")
    return record


@dataclass(frozen=True)
class RunNoise:
    """How far a case's median may move between runs of the same code on this machine, in log terms."""
    sigma: float | None  # of one pass's median; None: the run recorded nothing to estimate it
    dof: int | None  # degrees of freedom of the pooled spread between passes; None: from the machine's drift
    source: str

    def error(self, case) -> float:
        """Half-width of the 95% interval of the case's median between runs (log terms)."""
        within = case.get("median_error")
        passes = len([p for p in case.get("pass_p50_ms") or [] if p]) or 1
        if self.sigma is None:
            return within if within is not None else math.inf
        if self.dof:  # the spread between passes holds the noise within them
            return t95(self.dof) * self.sigma / math.sqrt(passes)
        return math.inf if within is None else math.hypot(1.96 * self.sigma, within)


def run_noise(cases) -> RunNoise:
    """The spread between passes of the same case, pooled over the run's cases (`--passes 2` or more); else the
    drift of the machine's speed probe over the run (1.4826 MAD of its log), which a shared machine needs.

    Measured on a 2-core cloud VM: the speed of a fixed matmul wandered by 2x within two minutes, and runs of the
    same code differed by up to 2.4x in a case, so the spread of rounds within a case says little about the next run.
    """
    squares, dof = 0.0, 0
    for case in cases:
        logs = [math.log(p) for p in case.get("pass_p50_ms") or [] if p]
        if len(logs) > 1:
            mean = sum(logs) / len(logs)
            squares += sum((x - mean) ** 2 for x in logs)
            dof += len(logs) - 1
    if dof:
        return RunNoise(math.sqrt(squares / dof), dof, f"spread between passes ({dof} degrees of freedom)")
    speeds = [math.log(s) for c in cases for s in c.get("machine_speeds_flops") or []]
    if len(speeds) >= 3:
        return RunNoise(robust_sigma(speeds), None,
                        "drift of the machine's speed (one pass: save runs with --passes 3 for a firmer verdict)")
    return RunNoise(None, None, "the medians' own intervals only (nothing recorded of the noise between runs)")


def load_run(path: str) -> Run:
    """Raises UsageError naming the file when it is missing, truncated or not a cnnbench run. A journal (.jsonl) is
    read as the run it records, however far it got."""
    try:
        if path.endswith(".jsonl"):
            data = journal.State(path).as_saved_run()
        else:
            with open(path) as f:
                data = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON, truncated? ({err.msg} at line {err.lineno})") from None
    except ValueError as err:  # a journal without its header
        raise UsageError(str(err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise UsageError(f"{path}: not a pytest-benchmark run (no 'benchmarks' list)")
    cases = [b for b in data["benchmarks"] if isinstance(b, dict) and "model" in b.get("extra_info", {})]
    if data["benchmarks"] and not cases:
        raise UsageError(f"{path}: a pytest-benchmark run, but not of cnnbench (no case has a 'model')")
    suite = data.get("cnnbench") or {}
    machine = (data.get("machine_info") or {}).get("cnnbench") or {}
    name = suite.get("run_name") or os.path.splitext(os.path.basename(path))[0]
    overhead = next((b.get("extra_info") for b in data["benchmarks"]
                     if isinstance(b, dict) and b.get("group") == OVERHEAD_GROUP and b.get("extra_info")), None)
    by_case = {}
    for bench in cases:
        by_case.setdefault(bench["extra_info"].get("case") or bench.get("name"), []).append(bench)
    records = [_case_record(passes, name, machine.get("device", "-"), backend_of(machine))
               for passes in by_case.values()]
    noise = run_noise(records)
    for record in records:
        if record["median_error"] is None and noise.dof:  # a case of several passes: known from their spread
            record["median_error"] = noise.error(record)
            record["reached_target"] = record["median_error"] <= (record.get("target_error") or 0)
    for index, result in scaling(records).items():  # again: a case of several passes has its pooled figures
        records[index]["scaling"] = result
    scaled = tuple(r for r in records if (r.get("replicas") or 1) > 1 or (r.get("workers") or 1) > 1)
    return Run(path, name, machine, data.get("commit_info") or {}, data.get("datetime") or "",
               [r for r in records if r not in scaled], suite.get("skipped") or [], overhead, noise,
               suite.get("time_s"), suite.get("plan"), suite.get("incomplete"), scaled)
