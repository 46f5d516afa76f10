"""The terms of a saved case record, shared by the side that writes runs and the side that reads them."""
from __future__ import annotations

import math

SCHEMA_VERSION = 2  # 2: p90/p99 null below their sample counts; median_error
CASE_FIELDS = ("model", "mode", "batch_size", "xla", "precision", "replicas", "workers", "runtime",
               "scenario")  # a case's axes
# of the axes that older runs did not record
KERAS = "keras"  # the runtime of the Keras backend's own steps (TensorFlow, or JAX); the others are deployment runtimes
STEPS = "steps"  # the suite's own measurement, steps of a batch back to back; the others are LoadGen's scenarios
SCENARIOS = ("single-stream", "server", "offline")
MIB = 2 ** 20
FIELD_DEFAULTS = {"replicas": 1, "workers": 1, "runtime": KERAS, "scenario": STEPS}
MODES = {"infer": "inference", "train": "training"}
# Where a session's time goes (`time_s` of the saved run): "first_call" is tracing, graph optimisation, any XLA
# compile and the first run of a step; "timed" the rounds the figures come from; "probes" the ceilings and the speed
# probe beside each case; "export" the deployment runtimes' exports (bench.engines.runtimes); the saved record adds
# "workers" the worker processes that time cases again (bench.plugin.workers); the saved record adds "other"
# (start-up, collection, freeing models) and "total".
PHASES = ("timed", "first_call", "build", "export", "pilot", "trace", "probes", "workers")


def case_params(saved: dict) -> dict:
    """Plain JSON params for pytest-benchmark's own tools, not the Case dataclass it cannot save."""
    info = saved["extra_info"]
    if "case" in info:
        return {"case": info["case"], **{key: info.get(key, FIELD_DEFAULTS.get(key)) for key in CASE_FIELDS},
                "pass": info["pass"]}
    return saved.get("params") or {"case": saved["name"]}  # the overhead test: compare --group-by=param:case


SCALE_KEY = ("model", "mode", "batch_size", "precision", "xla", "input_shape")


def scaling(records: list[dict]) -> dict[int, dict]:
    """index in `records` -> {"efficiency", "error", "speedup", "baseline"} for each scaled case that has its
    one-replica case (same model, mode, per-replica batch, precision; same pass) among `records`.

    Efficiency is the global throughput at N replicas over N times the one-replica throughput; its error (absolute)
    combines the two medians' relative errors.
    """
    def key(record):
        return tuple(str(record.get(name)) for name in SCALE_KEY) + (record.get("pass"),)

    baselines = {key(r): r for r in records if r.get("replicas", 1) == 1 and r.get("workers", 1) == 1}
    result = {}
    for index, record in enumerate(records):
        replicas = record.get("replicas", 1)
        base = baselines.get(key(record))
        if replicas == 1 or base is None or not base.get("throughput"):
            continue
        speedup = record["throughput"] / base["throughput"]
        errors = [r.get("median_error") for r in (record, base)]
        error = math.hypot(*errors) * speedup / replicas if None not in errors else None
        result[index] = {"efficiency": speedup / replicas, "error": error, "speedup": speedup,
                         "baseline": base.get("case")}
    return result
