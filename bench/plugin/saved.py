"""What the plugin adds to pytest-benchmark's saved JSON: the machine record, each case's final MFU and plain params,
scaling efficiencies, and the run's own section (`cnnbench`: options, skips, plan, time, completeness)."""
from __future__ import annotations

import contextlib

from ..core.journal import count_finished
from ..core.records import KERAS, case_params, scaling

SCHEMA = 2


def machine_record(session) -> dict:
    """machine_info["cnnbench"], its ceilings measured now where the session has not measured them."""
    from ..measure import device

    harness = session.harness
    peaks = harness.peaks if harness else device.Peaks()
    with harness.clock("probes") if harness else contextlib.nullcontext():
        for precision in session.matrix.precisions:
            peaks.flops(precision)
        peaks.bandwidth()
    return harness.machine_record() if harness else device.machine_info(peaks)


def update(session, output_json: dict) -> None:
    harness, matrix, resumed = session.harness, session.matrix, session.resumed
    output_json["benchmarks"].extend(session.worker_benchmarks)  # the cases timed again in worker processes
    for bench in output_json["benchmarks"]:
        info = bench["extra_info"]
        bound_by = info.get("mfu_ceiling", info.get("precision"))
        if harness and info.get("achieved_tflops") is not None and bound_by:  # against the final ceiling
            ceiling = harness.peaks.flops(bound_by) * info.get("ceiling_devices", 1)
            info["mfu"] = info["achieved_tflops"] * 1e12 / ceiling
        bench["params"] = case_params(bench)
    if resumed:  # the cases the run finished before it was cut off, from its journal
        output_json["benchmarks"][:0] = resumed.benchmarks
    infos = [bench["extra_info"] for bench in output_json["benchmarks"]]
    for index, result in scaling(infos).items():  # against the one-replica cases of the same run
        infos[index]["scaling"] = result
    mirror_pairs(infos)
    skipped = harness.skipped if harness else []
    suite = output_json["cnnbench"] = {
        "schema_version": SCHEMA, "run_name": session.run_name, "skipped": skipped,
        "matrix": {"precisions": list(matrix.precisions), "input_size": matrix.input_size,
                   "min_rounds": matrix.min_rounds, "case_seconds": matrix.case_seconds,
                   "time_budget_minutes": matrix.time_budget, "passes": matrix.passes,
                   "latency_samples": matrix.latency_samples, "latency_seconds": matrix.latency_seconds,
                   "replicas": list(matrix.replicas), "workers": matrix.workers,
                   "runtimes": [KERAS] * matrix.keras + list(matrix.runtimes),
                   "runtime_precisions": list(matrix.runtime_precisions)},
    }
    if session.stopped:
        planned = [(visit.test_id, visit.id) for visit in matrix.visits()]
        suite["incomplete"] = {"reason": session.stopped, "planned": len(planned),
                               "finished": count_finished(planned, output_json["benchmarks"], skipped)}
    if resumed:
        suite["resumed"] = {"sessions": 1 + sum(r.get("kind") == "resume" for r in resumed.records),
                            "earlier_cases": len(resumed.benchmarks)}
    if harness:
        from ..measure.planning import plan_record
        suite["plan"] = plan_record(harness)
        suite["time_s"] = time_breakdown(harness.clock.session, session.seconds())


def mirror_pairs(infos: list[dict]) -> None:
    """A reference twin's record names the cases timed beside it (`paired_by`: their throughput over its own), as
    theirs name it (`paired`)."""
    by_case = {(info.get("case"), info.get("pass")): info for info in infos}
    for info in infos:
        for paired in info.get("paired") or []:
            twin = by_case.get((paired["against"], info.get("pass")))
            if twin is not None:
                twin.setdefault("paired_by", []).append(
                    {"case": info["case"], **{key: paired[key] for key in ("ratio", "ci95", "ci99", "pairs")}})


def time_breakdown(phases: dict, total: float) -> dict:
    """Seconds per phase, "other" (start-up, collection, freeing models, pytest) and the session's total."""
    record = {phase: round(seconds, 2) for phase, seconds in phases.items()}
    record["other"] = round(total - sum(phases.values()), 2)
    record["total"] = round(total, 2)
    return record
