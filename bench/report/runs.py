"""Saved runs: find them, read them, check them, and flatten each case into one record (no TensorFlow here)."""
from __future__ import annotations

import datetime
import glob
import json
import math
import os
from dataclasses import dataclass

from ..core import journal
from ..core.cli import UsageError
from ..core.records import KERAS, STEPS, scaling
from ..core.stats import latency_summary_ms, paired_ratio
from .noise import RatioNoise, RunNoise, pair_kind, ratio_noise, run_noise

DEFAULT_STORAGE = ".benchmarks"
# Every metric of a case record, in report order; a run saved by an older suite may lack some (shown as "-").
FIELDS = ("run", "backend", "device", "case", "model", "family", "mode", "batch_size", "precision", "xla",
          "input_shape", "params", "trainable_params", "depth", "macs_per_sample", "flops_per_sample",
          "activation_bytes_per_sample", "flops_per_step", "throughput", "median_error", "target_error",
          "reached_target", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_min_ms",
          "latency_max_ms", "latency_stdev_ms", "rounds", "stop_reason", "cv", "compile_s", "achieved_tflops", "mfu",
          "peak_memory_bytes", "peak_memory_note", "machine_speed_flops", "trace_dir", "replicas", "workers",
          "global_batch", "all_reduce", "scaling", "paired", "runtime", "runtime_label", "executed_precision",
          "threads", "export", "fidelity", "compiles", "profile_note", "estimate_s", "scenario", "serving")
OVERHEAD_GROUP = "harness overhead"  # bench/test_overhead.py


def _by_process(infos, values) -> dict:
    """process -> the values of its passes (the run's own process is 0; its worker processes 1 and on)."""
    grouped = {}
    for info, value in zip(infos, values):
        grouped.setdefault(info.get("process") or 0, []).append(value)
    return grouped


def _pooled_pairs(infos) -> list[dict]:
    """Each twin's paired ratios over every pass of the case, their median and intervals, and each pass's and each
    worker process's own."""
    by_pass = {}
    for info in infos:
        for paired in info.get("paired") or []:
            if paired.get("ratios"):
                by_pass.setdefault(paired["against"], []).append((info, paired["ratios"]))
    return [{"against": against, **paired_ratio([r for _, ratios in passes for r in ratios]),
             "by_pass": [paired_ratio(ratios) for _, ratios in passes],
             "by_process": [paired_ratio([r for ratios in group for r in ratios]) for group in
                            _by_process([info for info, _ in passes], [ratios for _, ratios in passes]).values()]}
            for against, passes in by_pass.items()]


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
    noise: RunNoise | None = None  # how far its cases may move between runs of the same code (load_run sets it)
    time_s: dict | None = None  # where the session's time went, by phase (bench.core.records.PHASES, other, total)
    plan: dict | None = None  # its time budget, what fell outside and how far the estimates were off
    incomplete: dict | None = None  # {"reason", "finished", "planned"} of a run cut off; None when complete
    scaled: tuple = ()  # cases on several replicas or workers (their one-replica baselines are in `cases`)
    serving: tuple = ()  # LoadGen's scenarios (bench.measure.serving): figures of their own, not of steps
    ratio_noise: RatioNoise | None = None  # how far its paired ratios drift between moments (load_run sets it)


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


COMPANION_HOURS = 2.0  # runs of other backends merged by default: saved within this long of the newest run


def _started(text: str | None) -> datetime.datetime | None:
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.timezone.utc)


def companion_runs(run: Run, storage: str = DEFAULT_STORAGE) -> list[str]:
    """The newest saved run of each other backend on the same device and commit as `run`, started within
    COMPANION_HOURS of it: one session of the user's, who measures one backend a run (Keras binds one per
    process) and then the next; the report puts them side by side. Older runs are merged only when named."""
    taken, found, started = {backend_of(run.machine)}, [], _started(run.datetime)
    for path in reversed(find_runs(storage)):
        try:
            with open(path) as f:
                data = json.load(f)
            machine = (data.get("machine_info") or {}).get("cnnbench") or {}
            other, when = backend_of(machine), _started(data.get("datetime"))
            same = (machine.get("device") == run.machine.get("device")
                    and (data.get("commit_info") or {}).get("id") == run.commit.get("id"))
        except (OSError, ValueError, AttributeError):
            continue
        near = started and when and abs((when - started).total_seconds()) <= COMPANION_HOURS * 3600
        if other not in taken and same and near:
            taken.add(other)
            found.append(path)
    return found


def merged_note(runs) -> str | None:
    """The report's word on which runs it merged by default, and why those."""
    if len(runs) < 2:
        return None
    others = ", ".join(f"{r.name} ({backend_of(r.machine)})" for r in runs[1:])
    return (f"{runs[0].name} ({backend_of(runs[0].machine)}), the newest run, is shown with {others}: the newest run "
            f"of each other backend on its device and commit, started within {COMPANION_HOURS:g} hours of it (name "
            "runs to choose others: python -m bench.report 0001 0002)")


def _flatten(bench: dict, run_name: str, device: str, backend: str) -> dict:
    info = bench.get("extra_info", {})
    record = {key: info.get(key) for key in FIELDS}
    record["backend"] = info.get("backend") or backend
    record["runtime"] = info.get("runtime") or KERAS  # a run saved before the deployment runtimes: all Keras
    record["scenario"] = info.get("scenario") or STEPS
    latency = info.get("latency_ms") or {}
    for stat in ("p50", "p90", "p99", "mean", "min", "max", "stdev"):
        record[f"latency_{stat}_ms"] = latency.get(stat)
    record["run"] = run_name
    record["device"] = info.get("device") or device
    record["family"] = info.get("family") or info.get("model")  # a run saved before families: each model its own
    record["top_ops"] = info.get("top_ops") or []
    record["paired"] = info.get("paired") or []
    return record


def _case_record(passes: list[dict], run_name: str, device: str, backend: str) -> dict:
    """One record per case. A case timed in several passes gets the geometric mean of its passes' medians (each pass
    weighs the same, however many rounds its share of time bought), and percentiles of the pooled rounds."""
    passes = sorted(passes, key=lambda b: b["extra_info"].get("pass", 1))
    record = _flatten(passes[0], run_name, device, backend)
    infos = [b["extra_info"] for b in passes]
    record["paired"] = _pooled_pairs(infos)
    record["pass_p50_ms"] = [(info.get("latency_ms") or {}).get("p50") for info in infos]
    record["process_p50_ms"] = [math.exp(sum(math.log(p) for p in group) / len(group)) if all(group) else None
                                for group in _by_process(infos, record["pass_p50_ms"]).values()]
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
    serving = tuple(r for r in records if r["scenario"] != STEPS)
    records = [r for r in records if r["scenario"] == STEPS]
    noise, drift = run_noise(records), ratio_noise(records)
    for record in records:  # a paired ratio's interval holds the drift between moments that its pairs cannot see
        record["paired"] = [drift.widened(p, len(p[f"by_{drift.unit}"]), record.get("latency_p50_ms"),
                                          pair_kind(record, p)) for p in record["paired"]]
    for record in records:
        if record["median_error"] is None and noise.spreads:  # a case of several passes: known from their spread
            record["median_error"] = noise.error(record)
            record["reached_target"] = record["median_error"] <= (record.get("target_error") or 0)
    for index, result in scaling(records).items():  # again: a case of several passes has its pooled figures
        records[index]["scaling"] = result
    scaled = tuple(r for r in records if (r.get("replicas") or 1) > 1 or (r.get("workers") or 1) > 1)
    return Run(path, name, machine, data.get("commit_info") or {}, data.get("datetime") or "",
               [r for r in records if r not in scaled], suite.get("skipped") or [], overhead, noise,
               suite.get("time_s"), suite.get("plan"), suite.get("incomplete"), scaled, serving, drift)
