"""A session's harness opened and planned: the ceilings probed, the precisions the device runs fast kept, the cases
planned to the time budget (bench.measure.plan), and the plan as it ended, for the saved JSON."""
from __future__ import annotations

import math
import time
from dataclasses import replace

from ..cost import facts
from ..engines import runtimes
from ..engines.distribute import Scale
from ..engines.runtimes import KERAS, exports
from . import device, plan
from .harness import SERVING_ROOT, Harness, reference_twins, unsupported
from .matrix import STEPS, Case, Matrix
from .timing import Budget

# A spread worker (bench.plugin.workers) starts pytest, Keras and TensorFlow in 8 s on a 2-core Zen 4 (it takes the
# run's ceilings, probing nothing); its sample of the run's comparisons fills the rest of its seconds.
WORKER_START_S, SPREAD_WORKER_S = 8.0, 30.0


def spread_seconds(matrix) -> float:
    """Seconds the run keeps for its spread workers at its end (none when every case runs in several processes)."""
    return matrix.spread_workers * SPREAD_WORKER_S if matrix.processes == 1 else 0.0


def open_session(matrix: Matrix, *, tracer=None, started: float | None = None, scale: Scale | None = None,
                 export_root: str | None = None, peaks: device.Peaks | None = None, seconds: float | None = None,
                 serving_root: str = SERVING_ROOT) -> Harness:
    """The session's harness: ceilings measured in every candidate precision, the precisions the device runs fast
    kept (all of them when named; in a cluster, those the chief keeps), and the cases planned to the time budget,
    counted from `started`; a worker process's cases skipped after its `seconds`."""
    scale = scale or Scale()
    budget = Budget(min_rounds=matrix.min_rounds, max_seconds=matrix.case_seconds, fixed_pilot=bool(scale.cluster))
    probing = time.perf_counter()
    started = started if started is not None else probing
    harness = Harness(matrix, budget, tracer=tracer, scale=scale, export_root=export_root or exports.default_root(),
                      peaks=peaks or device.Peaks(), started=started, deadline=started + seconds if seconds else None,
                      serving_root=serving_root)
    with harness.clock("probes"):
        harness.speedups = device.speedups(harness.peaks, matrix.precisions or ("float32",))
    if not matrix.explicit_precisions:
        fast = device.fast_precisions(harness.speedups)
        harness.matrix = replace(matrix, precisions=scale.agree_on(matrix.precisions, fast))
    if harness.matrix.time_budget:
        # kept for the session's end: the kept precisions' ceilings measured again, the save, and the report the
        # README runs after it (about 10 s with its plots), so that the two commands together fit the budget
        # a worker process (its ceilings given) neither probes again nor saves a report: nothing to keep
        reserve = 0.0 if peaks is not None else (
            (time.perf_counter() - probing) * len(harness.matrix.precisions) / len(matrix.precisions) + 20.0
            + spread_seconds(matrix))
        deadline = harness.started + harness.matrix.time_budget * 60 / matrix.processes  # the workers get the rest
        ceilings = {p: harness.peaks.flops(p) for p in {"float32", *harness.matrix.precisions}}
        harness.planner = make_planner(harness.matrix, ceilings, plan.GPU_TIMINGS if device.gpu() else plan.CPU_TIMINGS,
                                       tracer, deadline, reserve, harness.export_root)
        harness.planner.setup = time.perf_counter() - harness.started
    return harness


def export_estimate(visit: Case, known, timings: plan.Timings, export_root: str | None, input_size: str) -> float:
    """Seconds a deployment runtime's case will spend exporting: none when the export is cached, or in a later
    pass (the first made it)."""
    if visit.runtime == KERAS or visit.pass_index > 1:
        return 0.0
    runtime = runtimes.module(visit.runtime)
    if export_root and exports.find(export_root, runtime, visit.model, input_size, visit.precision):
        return 0.0
    return timings.export(visit, known) + plan.EXPORT_PROCESS_S


def make_planner(matrix: Matrix, ceilings: dict, timings: plan.Timings, tracer, deadline: float | None,
                 reserve: float = 0.0, export_root: str | None = None) -> plan.Planner:
    """A planner for the matrix's visits on a device of these ceilings (FLOP/s by precision) and timings."""
    known = facts.lookup(matrix.models, matrix.input_size)
    visits = [visit for visit in matrix.visits() if not unsupported(visit, matrix.input_size)]  # others skip
    planned = {visit.test_id for visit in visits}
    estimates = {}
    for visit in visits:
        seconds = matrix.case_seconds
        ceiling = ceilings[visit.precision if visit.runtime == KERAS else "float32"]
        if matrix.latency_samples and visit.mode == "infer" and visit.batch_size == 1 and visit.pass_index == 1:
            step = timings.step(visit, known[visit.model], ceiling)
            seconds = min(matrix.latency_seconds, matrix.latency_samples * step) * matrix.passes
        traced = tracer is not None and visit.pass_index == 1
        if visit.scenario != STEPS:
            estimates[visit.test_id] = plan.estimate_serving(
                visit, known[visit.model], ceiling, timings, rules=matrix.loadgen_rules,
                export_s=export_estimate(visit, known[visit.model], timings, export_root, matrix.input_size))
            continue
        estimates[visit.test_id] = plan.estimate_case(
            visit, known[visit.model], ceiling, timings, min_rounds=matrix.min_rounds,
            case_seconds=seconds, passes=matrix.passes, trace_steps=tracer.steps_for if traced else None,
            trace_every_case=traced and tracer.every_case,
            twin_count=sum(twin.test_id in planned for twin in reference_twins(visit)),
            export_s=export_estimate(visit, known[visit.model], timings, export_root, matrix.input_size))
    builds = {name: timings.build(known[name]) for name in matrix.models}
    return plan.Planner(visits, estimates, builds, deadline, reserve, rebuild_share=timings.rebuild_share)


def plan_record(harness: Harness) -> dict | None:
    """The plan as it ended, for the saved JSON: the budget, what it admitted and how far the estimates were off."""
    planner = harness.planner
    if planner is None:
        return None
    outside = {skip["case"] for skip in harness.skipped if skip["reason"] == plan.OUTSIDE}
    admitted = [visit for visit in planner.visits if visit.id not in outside]
    fixed, priority = planner.setup + planner.reserve, []
    for (label, measured, cases), seconds in zip(planner.by_tier(admitted), planner.tier_seconds()):
        fixed += seconds
        if cases:
            priority.append({"tier": label, "cases": cases, "outside": cases - measured,
                             "admits_all_minutes": math.ceil(fixed / 60)})
    return {"budget_minutes": harness.matrix.time_budget, "candidate_cases": len(planner.visits),
            "outside_budget": len(outside), "measured_over_estimated": planner.measured_over_estimated,
            "estimated_s": sum(e for e, _ in planner.spent), "measured_s": sum(m for _, m in planner.spent),
            "priority": priority, "missing_exports": missing_exports(planner, outside)}


def missing_exports(planner: plan.Planner, outside: set) -> dict:
    """The runtime cases outside the budget whose export was not cached when planned: how many, their precisions,
    and their exports' estimated minutes (each export once), which `python -m bench.export` makes ahead."""
    cases = [visit for visit in planner.visits if visit.id in outside and visit.runtime != KERAS
             and planner.estimates[visit.test_id].export > 0]
    seconds = {(v.runtime, v.model, v.precision): planner.estimates[v.test_id].export - plan.EXPORT_PROCESS_S
               for v in cases}
    return {"cases": len(cases), "precisions": sorted({v.precision for v in cases}),
            "minutes": round(sum(seconds.values()) / 60, 1)}
