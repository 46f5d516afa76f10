"""The time budget: which cases a run can afford, in a stated priority, revised as measured times come in.

No TensorFlow here: the planner works from each model's layer count and FLOPs (models/facts.json) and the measured
ceilings, so its decisions can be tested for any device, described.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from ..core.stats import FAST_STEP_MS
from ..cost.facts import ModelFacts
from ..engines.runtimes import KERAS
from .matrix import STEPS, Case
from .serving import QUICK, buckets
from .timing import PILOT_SLOW_S
from .trace import trace_group

OUTSIDE = "outside the time budget"
# The zoo's exports took 0.03 s (a module, ONNX int8) to 100 s (AlexNet, ONNX): a fresh machine's default run could
# spend its budget exporting. Exports estimated longer than this, and not cached, come last in its priority: 10 s of
# converting, and the process each export runs in (bench.engines.runtimes.exports.make_in_child), which started,
# imported TensorFlow and built LeNet-5 in 6 s on a 2-core Zen 4.
EXPORT_PROCESS_S = 6.0
DEFERRED_EXPORT_S = 10.0 + EXPORT_PROCESS_S
CORRECTION_LIMITS = (0.25, 4.0)  # how far measured times may scale the remaining estimates
# The protected tiers are planned at this many times their estimates while later tiers are admitted: visits run
# model by model, and the first cases of a Zen 3 run took 1.36x their estimates (median).
PROTECTED_MARGIN = 1.3
# The correction starts as if this many seconds had run as estimated, so that one case's error cannot swing the plan
# (a first case alone moved a Zen 4 run's time left from 19.7 to 9.0 min); the prior fades, gone once this many
# estimated seconds are spent, so that a run whose cases all take 3x is corrected by 3x before its end.
CORRECTION_PRIOR_S, CORRECTION_PRIOR_FADE_S = 30.0, 300.0


@dataclass(frozen=True)
class Timings:
    """Seconds per phase of a case, from its layers, parameters and FLOPs (each dict is keyed by mode).

    A step runs at `efficiency` of the measured ceiling plus a fixed cost per layer (op dispatch, what small models
    spend their time on). The first call of a new step (tracing, graph optimisation, XLA compile) grows with the
    layers; a step already traced at another batch size costs one step more, or an XLA compile. Traces cost a
    fixed part, a part per layer (events to convert) and the traced steps.
    """
    efficiency: dict
    step_per_layer: dict
    first_call_per_layer: dict  # (mode, xla) -> s
    xla_compile_fixed: float
    build_per_layer: float
    build_per_param: float
    trace_fixed: float
    trace_per_layer: dict
    case_fixed: float  # pytest, the speed probe beside the case, freeing tensors
    # The shares of a case's seconds its rounds take before they stop (bench.measure.timing.stop_targets), by whether
    # it is timed beside twins and its step is under FAST_STEP_MS: means over 255 cases of a Zen 4 default run
    timed_share: dict = field(default_factory=lambda: {(False, True): 0.11, (False, False): 0.9,
                                                       (True, True): 0.74, (True, False): 1.36})
    build_fixed: float = 0.0  # a model's build and cost count beyond its layers (1.1 s for LeNet-5 on a Zen 4)
    rebuild_share: float = 0.3  # a model built again in another precision (0.26 of its first build on a Zen 4)
    # deployment runtimes: their step against TensorFlow's, the session's making per layer, and an export's seconds
    # as (fixed, per layer, per parameter) by runtime and precision (int8: the quantization of the float32 export)
    runtime_step: float = 0.8
    session_per_layer: float = 2e-3
    # ... and per parameter: a session packs every weight (ORT 24 ns, OpenVINO 9, LiteRT 8, fitted to 243 first
    # calls of two Zen 3 main jobs); per layer alone, VGG-16's OpenVINO session read 0.05 s and took 2.3 s
    session_per_param: float = 15e-9
    exports: dict = field(default_factory=dict)

    def step(self, case: Case, facts: ModelFacts, ceiling: float) -> float:
        flops = facts.flops if case.mode == "infer" else facts.training_flops
        seconds = (facts.layers * self.step_per_layer[case.mode]
                   + flops * case.batch_size / (ceiling * self.efficiency[case.mode]))
        return seconds * (self.runtime_step if case.runtime != KERAS else 1.0)

    def session(self, facts: ModelFacts) -> float:
        """A deployment runtime's session (or interpreter) made and its first call's compile."""
        return facts.layers * self.session_per_layer + facts.params * self.session_per_param

    def export(self, case: Case, facts: ModelFacts) -> float:
        fixed, per_layer, per_param = self.exports.get((case.runtime, case.precision), (5.0, 0.05, 1e-6))
        return fixed + per_layer * facts.layers + per_param * facts.params

    def build(self, facts: ModelFacts) -> float:
        return self.build_fixed + facts.layers * self.build_per_layer + facts.params * self.build_per_param


# Exports, (fixed, per layer, per parameter) seconds, fitted to 111 exports of 19 models on a 2-core AMD EPYC Zen 4
# (Keras 3.15, tf2onnx 1.17, TensorFlow's converter, OpenVINO 2026.4, NNCF 3.4): 18 min for those 19 models, AlexNet
# to ONNX alone 100 s. They run on the host's CPU on any device.
RUNTIME_EXPORTS = {("litert", "float32"): (0.6, 0.075, 0.16e-6), ("litert", "int8"): (0.3, 0.075, 0.43e-6),
                   ("onnxruntime", "float32"): (0.6, 5e-3, 1.1e-6), ("onnxruntime", "int8"): (0.05, 4e-3, 0.08e-6),
                   ("openvino", "float32"): (2.0, 0.03, 0.02e-6), ("openvino", "int8"): (0.55, 0.013, 0.17e-6)}

# Fitted to a run of 8 models (4 cases each) on a 2-core AMD EPYC Zen 3 with AVX2, TensorFlow 2.21 (the traces' to a
# Zen 4 default run: 22 s for 32 inference traces, 29 s for 26 training ones); a run scales them by what it measures
# as it goes.
CPU_TIMINGS = Timings(efficiency={"infer": 0.8, "train": 0.5}, step_per_layer={"infer": 30e-6, "train": 120e-6},
                      first_call_per_layer={("infer", False): 5.5e-3, ("infer", True): 11e-3,
                                            ("train", False): 30e-3, ("train", True): 120e-3},
                      xla_compile_fixed=0.3, build_per_layer=5e-3, build_per_param=12e-9,
                      trace_fixed=0.1, trace_per_layer={"infer": 2.5e-3, "train": 6e-3}, case_fixed=0.15,
                      exports=RUNTIME_EXPORTS, build_fixed=0.8)
# On paper (no GPU was at hand): kernel launches of 5-10 us, cuDNN autotuning on a step's first call, XLA compiles
# slower than on a CPU, traces with a device plane to convert as well.
GPU_TIMINGS = Timings(efficiency={"infer": 0.4, "train": 0.35}, step_per_layer={"infer": 20e-6, "train": 60e-6},
                      first_call_per_layer={("infer", False): 8e-3, ("infer", True): 30e-3,
                                            ("train", False): 30e-3, ("train", True): 120e-3},
                      xla_compile_fixed=1.0, build_per_layer=5e-3, build_per_param=5e-9,
                      trace_fixed=1.0, trace_per_layer={"infer": 2e-3, "train": 6e-3}, case_fixed=0.2,
                      exports=RUNTIME_EXPORTS)


@dataclass(frozen=True)
class CaseEstimate:
    step: float
    seconds: float  # the case with its step already traced (at another batch size) and its model built
    new_step: float  # what tracing the step adds, when the case is the first of its step
    timed: float = 0.0  # of `seconds`, the timed rounds
    export: float = 0.0  # of `new_step`, a deployment runtime's export (0 when cached)
    trace: float = 0.0  # what the case's trace adds, when the case is the first of its trace group


class Plan(NamedTuple):
    cases: list  # of Case, in the order they will run
    seconds: float  # estimated, corrected by the measured times so far
    timed: float  # of those, in timed rounds


# Quick rules (bench.measure.serving.QUICK): LoadGen's min duration, and the queries a valid run needs
SERVING_QUERIES = {scenario: QUICK[scenario]["min_query_count"] for scenario in ("single-stream", "server")}
SERVING_TRIALS = 9  # a Server rate: bracket, bisection and a confirming trial, about
SERVING_CONFIRMS = 1.5  # confirming trials, on average (a model and engine of 8 took 1 to 4)
MLPERF_MIN_S = 600.0


def estimate_serving(case: Case, facts: ModelFacts, ceiling: float, timings: Timings, *, rules: str,
                     export_s: float = 0.0) -> CaseEstimate:
    """A LoadGen scenario: its padded batch sizes warmed, then its trials, as bench.measure.serving runs them."""
    one = timings.step(replace(case, batch_size=1), facts, ceiling)
    full = timings.step(case, facts, ceiling)
    warm = sum(timings.step(replace(case, batch_size=size), facts, ceiling) for size in buckets(case.batch_size))
    tracing = (timings.session(facts) if case.runtime != KERAS
               else facts.layers * timings.first_call_per_layer[(case.mode, case.xla)])
    minimum = MLPERF_MIN_S if rules == "mlperf" else QUICK[case.scenario]["min_duration_ms"] / 1e3
    if case.scenario == "single-stream":  # its back-to-back steps, then LoadGen's queries
        timed = min(2.0, max(10, SERVING_QUERIES["single-stream"]) * one) + max(minimum,
                                                                              SERVING_QUERIES["single-stream"] * one)
    elif case.scenario == "offline":
        timed = 1.5 * max(minimum, full)  # LoadGen is told to expect 1.5x the probed rate
    else:  # short search trials near twice the rate found, then confirming ones long enough for early stopping
        rate = case.batch_size / full / 3  # ResNet-50 on a 2-core CPU: 4.4 queries/s served, 12 samples/s offline
        search = max(QUICK["server-search"]["min_duration_ms"] / 1e3, QUICK["server-search"]["min_query_count"]
                     / (2 * rate))
        timed = (SERVING_TRIALS - 1) * search + SERVING_CONFIRMS * max(minimum, SERVING_QUERIES["server"] / rate)
    seconds = warm + 5 * full + timed + timings.case_fixed
    return CaseEstimate(full, seconds, tracing + export_s, timed, 0.0, export_s)


def estimate_case(case: Case, facts: ModelFacts, ceiling: float, timings: Timings, *, min_rounds: int,
                  case_seconds: float, passes: int, trace_steps=None, trace_every_case: bool = False,
                  twin_count: int = 0, export_s: float = 0.0) -> CaseEstimate:
    """First call, pilot, timed rounds, trace (`trace_steps(step seconds)` steps, when traced: with the first case
    of its trace group, or every case) and fixed costs, as bench.measure.harness runs a case. Its rounds take the
    share of its seconds measured for its kind (Timings.timed_share: beside `twin_count` reference twins or alone, a
    fast step or a slow one): when a case's intervals are known varies from case to case and run to run, and measured
    times correct the plan. Its pilot warms each twin with a step, and its rounds run every twin's step too. A
    deployment runtime's step is new with its export (`export_s`, 0 when cached) and its session; its trace is a
    profile in a session of its own."""
    step = timings.step(case, facts, ceiling)
    if case.runtime != KERAS:
        tracing = timings.session(facts)
        first_call, new_step = step, tracing + export_s
    else:
        tracing = facts.layers * timings.first_call_per_layer[(case.mode, case.xla)]
        first_call = step + (timings.xla_compile_fixed + tracing / 2 if case.xla else 0.0)  # XLA compiles every shape
        new_step = tracing / 2 if case.xla else tracing

    budget = case_seconds / passes
    share = timings.timed_share[bool(twin_count), step * 1e3 < FAST_STEP_MS]
    timed = max(min_rounds * step * (1 + twin_count), share * budget + step / 2)
    pilot = (step if step >= PILOT_SLOW_S else min(3 * step, max(step, budget / 4))) + twin_count * step
    trace = 0.0
    if trace_steps is not None and case.runtime != KERAS:
        trace = tracing + trace_steps(step) * step
    elif trace_steps is not None:
        trace = timings.trace_fixed + facts.layers * timings.trace_per_layer[case.mode] + trace_steps(step) * step
    own = first_call + pilot + timed + timings.case_fixed
    if trace_every_case:
        return CaseEstimate(step, own + trace, new_step, timed, export_s)
    return CaseEstimate(step, own, new_step, timed, export_s, trace)


class Tier(NamedTuple):
    label: str
    holds: Callable[[Case, Case, str | None], bool]  # (visit, its model's base, the run's first runtime)


def _same(visit: Case, base: Case, *axes: str) -> bool:
    return all(getattr(visit, axis) == getattr(base, axis) for axis in axes)


def _keras_steps(visit: Case, base: Case, mode: str | None = None) -> bool:
    return (visit.runtime == KERAS and visit.scenario == STEPS and visit.mode == (mode or visit.mode)
            and _same(visit, base, "replicas"))


def _mission_settings(visit: Case, base: Case) -> bool:
    """Inference at each batch size and with XLA at the first; training as it runs by default (XLA as in `base`)."""
    if visit.mode == "infer":
        return _same(visit, base, "xla") or _same(visit, base, "batch_size")
    return _same(visit, base, "xla")


# The order in which a budget admits cases, every model's cases of a tier before any of the next: first what the
# suite is named for (a step's speed across batch sizes, what XLA and each fast precision buy, what training costs,
# and where one runtime would serve it), then the deployment questions that build on them. A visit's tier is the
# first whose test holds; each model's base is its cheapest inference case in the reference settings (float32, no
# XLA, the smallest batch, as near to that as the matrix has).
PRIORITY = (
    Tier("each model's first inference case", lambda v, base, _: v == replace(base, pass_index=v.pass_index)),
    Tier("inference at the other batch sizes",
         lambda v, base, _: _keras_steps(v, base, "infer") and _same(v, base, "precision", "xla")),
    Tier("XLA at the first batch size",
         lambda v, base, _: _keras_steps(v, base, "infer") and _same(v, base, "precision", "batch_size")),
    Tier("the fast precisions", lambda v, base, _: _keras_steps(v, base, "infer") and _mission_settings(v, base)),
    Tier("training", lambda v, base, _: _keras_steps(v, base, "train") and _mission_settings(v, base)),
    Tier("the first deployment runtime's float32", lambda v, base, first: (
        v.runtime == first and v.scenario == STEPS and _same(v, base, "precision", "batch_size"))),
    Tier("the other runtimes' float32",
         lambda v, base, _: v.runtime != KERAS and v.scenario == STEPS and _same(v, base, "precision")),
    Tier("XLA at the other batch sizes, and training with XLA", lambda v, base, _: _keras_steps(v, base)),
    Tier("the runtimes' int8", lambda v, base, _: v.runtime != KERAS and v.scenario == STEPS),
    Tier("SingleStream", lambda v, base, _: v.scenario == "single-stream"),
    Tier("the rest: Server, Offline, other scales", lambda v, base, _: True),
    Tier(f"exports not cached, over {DEFERRED_EXPORT_S - EXPORT_PROCESS_S:g} s", lambda v, base, _: False),  # set below
)
PROTECTED_TIERS = 7  # the mission's questions and every runtime's float32: what a default run sets out to measure
DEFERRED_TIER = len(PRIORITY) - 1


def tiers(visits: list[Case], cost) -> dict[str, int]:
    """test_id -> its index in PRIORITY."""
    def key(visit: Case):
        return (visit.mode != "infer", visit.runtime != KERAS, visit.scenario != STEPS, visit.precision != "float32",
                visit.xla, visit.batch_size, visit.replicas * visit.workers, cost(visit))

    base = {}
    for visit in visits:
        if visit.model not in base or key(visit) < key(base[visit.model]):
            base[visit.model] = visit
    first_runtime = next((visit.runtime for visit in visits if visit.runtime != KERAS), None)
    return {visit.test_id: next(index for index, tier in enumerate(PRIORITY)
                                if tier.holds(visit, base[visit.model], first_runtime))
            for visit in visits}


def step_group(visit: Case):
    """The visits that share one traced step: bench.measure.model_cache keeps it across batch sizes."""
    return visit.pass_index, visit.model, visit.runtime, visit.precision, visit.mode, visit.xla


def model_group(visit: Case):
    """The visits that share one built model, adjacent in the run's order (a runtime's export is of the float32
    model)."""
    return visit.pass_index, visit.model, "float32" if visit.runtime != KERAS else visit.precision


def groups_of(visit: Case) -> tuple:
    """What a visit pays for once, to be shared by the visits after it: its model, its step, its trace."""
    return step_group(visit), model_group(visit), trace_group(visit), ("built", visit.pass_index, visit.model)


@dataclass
class Planner:
    """Chooses the visits that fit the budget, in priority order, and revises the choice before every visit.

    Priority: pass, then tier, then the cheaper first. A model's build, and the tracing of a step, are charged to
    the first chosen visit that needs them. Measured times scale the remaining estimates (their total over the
    estimates' total so far), so a run ends within the budget even when the estimates are off.
    """
    visits: list[Case]
    estimates: dict  # test_id -> CaseEstimate
    builds: dict  # model -> seconds
    deadline: float | None  # perf_counter seconds; None: no budget
    reserve: float = 0.0  # seconds kept for the end of the session (the second ceiling reading, the save)
    setup: float = 0.0  # session seconds spent before the plan (start-up, the ceiling probes)
    rebuild_share: float = 1.0  # Timings.rebuild_share
    started: set = field(default_factory=set)  # model and step groups a finished visit has paid for
    charged: dict = field(default_factory=dict)  # test_id -> the estimate it was admitted with
    spent: list = field(default_factory=list)  # (estimated, measured) of finished visits

    def __post_init__(self):
        self.pending = {visit.test_id: visit for visit in self.visits}
        self.tier = tiers(self.visits, lambda v: self.estimates[v.test_id].seconds)
        for visit in self.visits:  # a long export not yet cached waits for everything else (a later run has it)
            if self.estimates[visit.test_id].export > DEFERRED_EXPORT_S:
                self.tier[visit.test_id] = DEFERRED_TIER
        position = {visit.test_id: index for index, visit in enumerate(self.visits)}
        self.order = sorted(self.visits, key=lambda v: (v.pass_index, self.tier[v.test_id],
                                                        self.estimates[v.test_id].seconds, position[v.test_id]))

    @property
    def measured_over_estimated(self) -> float | None:
        estimated = sum(e for e, _ in self.spent)
        return sum(m for _, m in self.spent) / estimated if estimated else None

    @property
    def correction(self) -> float:
        """What scales the remaining estimates: measured over estimated, damped by a fading CORRECTION_PRIOR_S."""
        low, high = CORRECTION_LIMITS
        estimated = sum(e for e, _ in self.spent)
        prior = CORRECTION_PRIOR_S * max(0.0, 1.0 - estimated / CORRECTION_PRIOR_FADE_S)
        ratio = (sum(m for _, m in self.spent) + prior) / (estimated + prior) if estimated + prior else 1.0
        return min(high, max(low, ratio))

    def _cost(self, visit: Case, groups: set) -> tuple[float, float]:
        """(seconds, of which timed) of a visit after the visits that paid for `groups`."""
        estimate = self.estimates[visit.test_id]
        new_step = step_group(visit) not in groups
        seconds = (estimate.seconds + (estimate.new_step if new_step else 0.0)
                   + (0.0 if trace_group(visit) in groups else estimate.trace)
                   + (0.0 if model_group(visit) in groups else self._build(visit, groups)))
        return seconds, estimate.timed

    def _build(self, visit: Case, groups: set) -> float:
        """A visit's model build: a fraction of it where its model is already built in another precision."""
        again = ("built", visit.pass_index, visit.model) in groups
        return self.builds[visit.model] * (self.rebuild_share if again else 1.0)

    def choose(self, now: float) -> Plan:
        """The pending visits that fit in the time left, with their estimated seconds (corrected)."""
        scale = self.correction
        available = math.inf if self.deadline is None else self.deadline - now - self.reserve
        chosen, total, timed, groups = [], 0.0, 0.0, set(self.started)
        margin = 0.0  # the protected tier's PROTECTED_MARGIN beyond its estimates, while later tiers are admitted
        for visit in self.order:
            if visit.test_id not in self.pending:
                continue
            seconds, of_which_timed = self._cost(visit, groups)
            protected = self.tier[visit.test_id] < PROTECTED_TIERS
            if total + scale * seconds + (0.0 if protected else margin) <= available:
                chosen.append(visit)
                total += scale * seconds
                timed += scale * of_which_timed
                margin += (PROTECTED_MARGIN - 1) * scale * seconds if protected else 0.0
                groups.update(groups_of(visit))
        return Plan(chosen, total, timed)

    def admit(self, visit: Case, now: float) -> bool:
        """Whether `visit` still fits; an admitted visit must be followed by `finish`."""
        if visit not in self.choose(now).cases:
            self.pending.pop(visit.test_id, None)
            return False
        self.charged[visit.test_id] = self._cost(visit, self.started)[0]
        self.started.update(groups_of(visit))
        return True

    def estimate_of(self, visit: Case) -> float | None:
        """The seconds an admitted visit was planned to take, corrected as the plan then was."""
        raw = self.charged.get(visit.test_id)
        return None if raw is None else raw * self.correction

    def finish(self, visit: Case, measured: float | None) -> None:
        """A visit ended: its measured seconds, or None when it ended early (skipped, out of memory)."""
        self.pending.pop(visit.test_id, None)
        estimated = self.charged.pop(visit.test_id, None)
        if estimated is not None and measured is not None:
            self.spent.append((estimated, measured))

    def seconds_left(self, now: float) -> float:
        return self.choose(now).seconds + self.reserve

    def by_tier(self, chosen) -> list[tuple[str, int, int]]:
        """(label, visits chosen, visits) of each tier, in PRIORITY's order (a tier of this matrix may have none)."""
        chosen_ids = {visit.test_id for visit in chosen}
        counts = [[0, 0] for _ in PRIORITY]
        for visit in self.visits:
            counts[self.tier[visit.test_id]][0] += visit.test_id in chosen_ids
            counts[self.tier[visit.test_id]][1] += 1
        return [(tier.label, *count) for tier, count in zip(PRIORITY, counts)]

    def tier_seconds(self) -> list[float]:
        """Seconds of every visit of each tier, as estimated now (corrected), in PRIORITY's order: added up to a
        tier, with the session's seconds outside its cases (`setup`, `reserve`), they are the budget that admits
        that tier and those before it whole."""
        seconds, groups = [0.0] * len(PRIORITY), set()
        for visit in self.order:
            cost, _ = self._cost(visit, groups)
            seconds[self.tier[visit.test_id]] += self.correction * cost
            groups.update(groups_of(visit))
        return seconds
