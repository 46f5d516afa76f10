"""A LoadGen scenario as a case of the run: the case's float32 inference step served to LoadGen
(bench.measure.serving), its logs written whole beside the case's traces, and its figures; and what every case's
saved record holds, a scenario's and a step's alike."""
from __future__ import annotations

import contextlib
import os
import time

import numpy as np

import models

from ..core.files import staged_folder
from ..core.records import SCHEMA_VERSION
from ..engines import current as engine
from ..engines import runtimes
from . import device, serving
from .matrix import Case


def case_record(case: Case, cost, passes: int) -> dict:
    """The keys of every case's saved record: what the case is, its model's cost, the device and engine."""
    return {"schema_version": SCHEMA_VERSION, "case": case.id, "model": case.model,
            "family": models.entry(case.model).family, "mode": case.mode, "batch_size": case.batch_size,
            "precision": case.precision, "xla": case.xla, "device": device.device_name(),
            "input_shape": list(cost.input_shape), "params": cost.params, "flops_per_sample": cost.flops,
            "backend": engine().NAME, "runtime": case.runtime, "scenario": case.scenario, "pass": case.pass_index,
            "passes": passes}


def serve(harness, case: Case, benchmark, model, cost, step, deployed) -> None:
    """A LoadGen scenario (bench.measure.serving) against the case's float32 inference step, its logs written in
    a staging folder and moved beside the case's traces when whole."""
    deploying = deployed is not None
    labels = {}  # each padded batch size's targets, made before any query is timed
    for size in serving.buckets(case.batch_size):
        labels[size] = engine().synthetic_batch(model, size)[1]

    def infer(x):  # a query's result on the host: where a server would answer it
        return np.asarray(step(x) if deploying else step(x, labels[len(x)]))
    final = os.path.join(harness.serving_root, case.id, "loadgen")
    staging = os.path.join(harness.serving_root + ".staging", case.id)
    record = {}
    try:
        with staged_folder(final, staging) as staged:
            with harness.clock("first_call"):
                started = time.perf_counter()
                loadgen = serving.LoadGen(infer, tuple(model.input_shape[1:]), case.batch_size,
                                          harness.matrix.loadgen_rules, staged, case.model)
                compile_s = time.perf_counter() - started

            def scenario():
                record.update(figures(harness, case, loadgen, infer))
            with harness.clock("timed"):
                benchmark.pedantic(scenario, rounds=1, iterations=1, warmup_rounds=0)
    finally:
        with contextlib.suppress(OSError):  # the staging folder, once no case is left in it
            os.rmdir(os.path.dirname(staging))
    for trial in record.get("trials", []) + [record]:
        if trial.get("log_dir"):
            trial["log_dir"] = trial["log_dir"].replace(staging, final, 1)
    harness.served[case.model, case.runtime, case.scenario] = record
    harness.last_result = {"case": case.test_id, "summary": serving.summary(record)}
    benchmark.extra_info.update({
        **case_record(case, cost, harness.matrix.passes), "compile_s": compile_s, "serving": record,
        "trace_dir": final, **({"runtime_label": runtimes.module(case.runtime).LABEL} if deploying else {}),
    })
    benchmark.extra_info["time_s"] = {phase: round(seconds, 3) for phase, seconds in harness.clock.case.items()}


def figures(harness, case: Case, loadgen, infer) -> dict:
    """The scenario's figures: LoadGen's, its validity and its reasons; Server's every trial of the rate."""
    rules = {"rules": harness.matrix.loadgen_rules, "max_batch": case.batch_size,
             "batch_timeout_ms": serving.BATCH_TIMEOUT_S * 1e3}
    if case.scenario == "single-stream":
        steps = serving.batch1_latency(infer, loadgen.samples)
        return {**rules, **loadgen.single_stream(steps["back_to_back_p50_ms"] / 1e3).record(), **steps}
    if case.scenario == "offline":
        return {**rules, **loadgen.offline(case.batch_size / serving.probe(infer, loadgen.samples,
                                                                           case.batch_size)).record()}
    single = harness.served.get((case.model, case.runtime, "single-stream"))
    if harness.matrix.latency_bound_ms:
        bound_s, bound_from = harness.matrix.latency_bound_ms / 1e3, "--latency-bound-ms"
    else:
        if not single or not single.get("p90_ms"):  # this engine's SingleStream, measured now
            single = loadgen.single_stream(serving.probe(infer, loadgen.samples, 1)).record()
        bound_s = max(serving.BOUND_MULTIPLE * single["p90_ms"] / 1e3, serving.BOUND_FLOOR_S)
        bound_from = (f"{serving.BOUND_MULTIPLE:g}x the SingleStream p90 ({single['p90_ms']:.3g} ms), at least "
                      f"{serving.BOUND_FLOOR_S * 1e3:g} ms")
    offline = harness.served.get((case.model, case.runtime, "offline"))
    ceiling = (offline or {}).get("samples_per_s") or case.batch_size / serving.probe(
        infer, loadgen.samples, case.batch_size)
    best, trials = loadgen.find_rate(bound_s, ceiling)
    found = best.record() if best else {"valid": False, "reason": f"not servable within {bound_s * 1e3:.3g} ms "
                                                                  "at any rate tried", "scenario": "server"}
    return {**rules, **found, "bound_ms": bound_s * 1e3, "bound_from": bound_from,
            "qps_at_bound": best.target_qps if best else None,
            "trials": [trial.record() for trial in trials]}
