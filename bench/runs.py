"""Saved runs: find them, read them, check them, and flatten each case into one record (no TensorFlow here)."""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from .cli import UsageError

DEFAULT_STORAGE = ".benchmarks"
# Every metric of a case record, in report order; a run saved by an older suite may lack some (shown as "-").
FIELDS = ("run", "device", "case", "model", "mode", "batch_size", "precision", "xla", "input_shape", "params",
          "trainable_params", "depth", "macs_per_sample", "flops_per_sample", "activation_bytes_per_sample",
          "flops_per_step", "throughput", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
          "latency_min_ms", "latency_stdev_ms", "rounds", "cv", "compile_s", "achieved_tflops", "mfu",
          "peak_memory_bytes", "trace_dir")


@dataclass(frozen=True)
class Run:
    path: str
    name: str
    machine: dict  # machine_info["cnnbench"], {} for an older run
    commit: dict
    datetime: str
    cases: list[dict]  # flat records, keys from FIELDS
    skipped: list[dict]


def find_runs(storage: str = DEFAULT_STORAGE) -> list[str]:
    """Saved runs under pytest-benchmark's storage, oldest first."""
    return sorted(glob.glob(os.path.join(storage, "*", "*.json")), key=os.path.getmtime)


def resolve_ref(ref: str, storage: str = DEFAULT_STORAGE) -> str:
    """A path, or a run number as pytest-benchmark names them ('0003' or '3')."""
    if os.path.exists(ref) or os.sep in ref or ref.endswith(".json"):
        return ref
    if ref.isdigit():
        found = [p for p in find_runs(storage) if os.path.basename(p).split("_", 1)[0] == f"{int(ref):04d}"]
        if found:
            return found[-1]
    raise UsageError(f"no saved run {ref!r} under {storage}/ (give a path or a run number such as 0003)")


def newest_run(storage: str = DEFAULT_STORAGE) -> str:
    runs = find_runs(storage)
    if not runs:
        raise UsageError(f"no saved run under {storage}/; make one with `pytest bench/ --benchmark-autosave`")
    return runs[-1]


def _flatten(bench: dict, run_name: str, device: str) -> dict:
    info = bench.get("extra_info", {})
    record = {key: info.get(key) for key in FIELDS}
    latency = info.get("latency_ms") or {}
    for stat in ("p50", "p90", "p99", "mean", "min", "stdev"):
        record[f"latency_{stat}_ms"] = latency.get(stat)
    record["run"] = run_name
    record["device"] = info.get("device") or device
    record["top_ops"] = info.get("top_ops") or []
    return record


def load_run(path: str) -> Run:
    """Raises UsageError naming the file when it is missing, truncated or not a cnnbench run."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON, truncated? ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise UsageError(f"{path}: not a pytest-benchmark run (no 'benchmarks' list)")
    cases = [b for b in data["benchmarks"] if isinstance(b, dict) and "model" in b.get("extra_info", {})]
    if data["benchmarks"] and not cases:
        raise UsageError(f"{path}: a pytest-benchmark run, but not of cnnbench (no case has a 'model')")
    suite = data.get("cnnbench") or {}
    machine = (data.get("machine_info") or {}).get("cnnbench") or {}
    name = suite.get("run_name") or os.path.splitext(os.path.basename(path))[0]
    return Run(path, name, machine, data.get("commit_info") or {}, data.get("datetime") or "",
               [_flatten(b, name, machine.get("device", "-")) for b in cases], suite.get("skipped") or [])
