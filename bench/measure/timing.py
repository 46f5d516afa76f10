"""The clock: compile time apart, a pilot that warms up, then timed rounds that stop when the figures are known."""
from __future__ import annotations

import math
import random
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..core.records import PHASES
from ..core.stats import (
    MEDIAN_INTERVAL_MIN,
    MEDIAN_SE_FACTOR,
    half_width,
    median_error,
    one_pass_drift,
    paired_ratio,
    t95,
)
from ..engines import current as engine


@dataclass(frozen=True)
class Budget:
    min_rounds: int = 5
    max_seconds: float = 2.0  # timed rounds of one case stop once they would run longer than this
    target_error: float = 0.02  # stop once the median's 95% interval is within this fraction of it
    pilot_rounds: int = 3
    within_time: bool = False  # min_rounds give way to max_seconds (the latency scenario's stated time limit)
    fixed_pilot: bool = False  # always pilot_rounds: a cluster's workers run the same steps (engines.distribute)


def timed_call(fn, *args) -> float:
    """Seconds from the call until the device has finished the work it queued (a step with a `wait` of its own, a
    deployment runtime's, says how it finishes)."""
    wait = getattr(fn, "wait", None) or engine().wait
    start = time.perf_counter()
    wait(fn(*args))
    return time.perf_counter() - start


# A step this long is warm after one pilot call, its first call having run it once already: on a 2-core Zen 4 the
# third call of ResNet-50's inference at batch 8 took 1.13x the median of the next five, of its bfloat16 training
# step 1.03x, of VGG-16's training 0.98x (the second call 1.28x, 1.03x, 0.95x).
PILOT_SLOW_S = 0.05


def pilot(fn, args, budget: Budget) -> list[float]:
    """Warm-up rounds (not reported), up to `pilot_rounds` within a quarter of the case's seconds, one for a step over
    PILOT_SLOW_S; in a cluster their spread also sizes the timed run (plan_rounds), elsewhere the rounds stop by
    checking as they go (Rounds)."""
    samples = [timed_call(fn, *args)]
    while len(samples) < budget.pilot_rounds and (budget.fixed_pilot or (
            sum(samples) < budget.max_seconds / 4 and samples[-1] < PILOT_SLOW_S)):
        samples.append(timed_call(fn, *args))
    return samples


def plan_rounds(pilot_samples: list[float], budget: Budget) -> tuple[int, str]:
    """Rounds to time and why that many: 'precision' (median known well enough), 'budget' or 'min_rounds'."""
    median = statistics.median(pilot_samples)
    spread = statistics.stdev(pilot_samples) if len(pilot_samples) > 1 else median * 0.1
    scale = MEDIAN_SE_FACTOR * spread / (budget.target_error * median)
    needed = math.ceil((t95(max(2, math.ceil((1.96 * scale) ** 2)) - 1) * scale) ** 2)  # t's own rounds, roughly
    affordable = max(1, math.floor(budget.max_seconds / median))
    if needed <= affordable:
        rounds, reason = needed, "precision"
    else:
        rounds, reason = affordable, "budget"
    if rounds < budget.min_rounds:
        if budget.within_time and budget.min_rounds > affordable:
            return affordable, "budget"
        return budget.min_rounds, "min_rounds"
    return rounds, reason


PAIR_TARGET = 0.05  # a paired ratio's 95% interval within ±5% of it: the precision a comparison of settings needs


def stop_targets(budget: Budget, step_s: float) -> tuple[float, float]:
    """(the median's, each paired ratio's) 95% half-width, relative, at which a case's rounds stop: the budget's
    target, or half the drift between runs that the report may add to a median's interval (1.96 one_pass_drift, in
    quadrature) where that is wider (below it, more rounds would narrow the printed interval by under 12%: hypot(1,
    1/2) = 1.118); and PAIR_TARGET. A ratio's drift between worker processes, which the report adds to its interval,
    is smaller than a median's: 3-4% (sd of the log) on a 2-core Zen 4, where a median's was 9-15%."""
    return max(budget.target_error, 1.96 * one_pass_drift(step_s * 1e3) / 2), PAIR_TARGET


CHECK_GROWTH = 1.1  # the stopping rule is checked each time the rounds have grown by 10% (and at min_rounds)
# Blocks, not single calls, alternate: a step called right after another runs slow for a while (ONNX Runtime's
# ResNet-20 at batch 1 on a 2-core Xeon: 0.30 ms back to back, 0.51 ms alternated call by call with TensorFlow's and
# its int8 session's; the pools of threads that the last step left spinning hold the cores), so each step is first
# called untimed for a settling time, then timed back to back for as long (one call of a longer step). 5 ms settles
# TensorFlow's steps after each other (LeNet-5 with XLA at batch 1: 0.52 ms alternated, 0.36 settled, 0.41 alone); a
# deployment runtime's takes 20 ms (ONNX Runtime's int8 ResNet-20 after its float32 session: +13% at 5 ms).
SETTLE_S, RUNTIME_SETTLE_S = 0.005, 0.02


class EnoughRounds(Exception):
    """Raised from pytest-benchmark's untimed setup to end a case's rounds: the rounds already timed are kept."""


def back_to_back(step, args, seconds: float, last: float | None = None) -> list[float]:
    """Calls of a step back to back while the next, as long as the last, fits within `seconds` (at least one when the
    last's length is not known); their seconds. Untimed they settle a step that another has just run before."""
    times, spent = [], 0.0
    while last is None or spent + last <= seconds:
        last = timed_call(step, *args)
        times.append(last)
        spent += last
    return times


@dataclass
class Rounds:
    """A case's timed rounds, run through pytest-benchmark (`benchmark.pedantic`, one timed call a pedantic round),
    with the steps of its reference twins timed in the same rounds in a random order (paired), until the recorded
    median is known within the target and each paired ratio within PAIR_TARGET, or the case's seconds are spent.

    A round holds a block of the case's own calls and one of each twin's (settled for `settle_s`, then as long back
    to back; without twins a round is one call). Each twin's block in round k is paired with the case's own block in
    round k: both saw the same moment of the machine, whose drift (15-28% over minutes on a shared VM) then cancels
    in the ratio of their medians. Every call is `timed_call`'s own seconds, so pytest-benchmark's overhead is on
    neither side.
    """
    step: object
    args: tuple
    budget: Budget
    twin_steps: dict = field(default_factory=dict)  # twin's name -> (its step, its args)
    seed: int = 0
    settle_s: float = SETTLE_S
    own: list = field(default_factory=list)  # seconds of the case's own calls, every round's
    own_blocks: list = field(default_factory=list)  # each round's own calls' seconds
    twin_blocks: dict = field(default_factory=dict)  # name -> each round's calls of that twin
    stop_reason: str = "budget"

    def run(self, benchmark) -> str:
        """The rounds, then why they stopped: 'precision' (every interval within its target), 'budget' (the seconds
        spent first) or 'min_rounds' (the floor of rounds outlasted the seconds)."""
        rng, after, block_s = random.Random(self.seed), [], self.settle_s if self.twin_steps else 0.0
        self.twin_blocks = {name: [] for name in self.twin_steps}
        started, check_at, floor_outlasted = time.perf_counter(), self.budget.min_rounds, False
        round_started, last_round_s, block_spent = None, 0.0, 0.0

        def between_rounds():  # pytest-benchmark's setup: untimed, before each of the case's own calls
            nonlocal after, check_at, floor_outlasted, round_started, last_round_s, block_spent
            if self.own_blocks and block_spent + self.own[-1] <= block_s:
                return  # the case's own block goes on, back to back
            for name in after:  # the twins that the last round's order put after the case's own block
                self._time_twin(name)
            after, now = [], time.perf_counter()
            if round_started is not None:
                last_round_s = now - round_started
            done = len(self.own)
            if done and benchmark.stats is not None:
                if done >= check_at:
                    check_at = max(done + 1, math.ceil(done * CHECK_GROWTH))
                    if self._known(benchmark.stats.stats.data):
                        self.stop_reason = "precision"
                        raise EnoughRounds
                if now - started + last_round_s > self.budget.max_seconds:
                    if done >= self.budget.min_rounds or self.budget.within_time:
                        self.stop_reason = "min_rounds" if floor_outlasted else "budget"
                        raise EnoughRounds
                    floor_outlasted = True
            round_started = now
            order = [None, *self.twin_steps]  # None: the case's own block
            rng.shuffle(order)
            for name in order[:order.index(None)]:
                self._time_twin(name)
            after = order[order.index(None) + 1:]
            if self.twin_steps:
                back_to_back(self.step, self.args, self.settle_s, self.own[-1] if self.own else None)
            self.own_blocks.append([])
            block_spent = 0.0

        def own_round():
            nonlocal block_spent
            seconds = timed_call(self.step, *self.args)
            self.own.append(seconds)
            self.own_blocks[-1].append(seconds)
            block_spent += seconds

        try:  # a cap the rule above never reaches: it ends the rounds, by precision or by time
            benchmark.pedantic(own_round, setup=between_rounds, rounds=10 ** 7, iterations=1, warmup_rounds=0)
        except EnoughRounds:
            # pytest-benchmark has no way to end pedantic's rounds early but an exception, after which it takes the
            # benchmark for failed and leaves it out of the saved run; the rounds it recorded are whole
            benchmark.has_error = False
        for name in after:
            self._time_twin(name)
        return self.stop_reason

    def _time_twin(self, name: str) -> None:
        step, args = self.twin_steps[name]
        blocks = self.twin_blocks[name]
        back_to_back(step, args, self.settle_s, blocks[-1][-1] if blocks else None)  # settled, untimed
        blocks.append(back_to_back(step, args, self.settle_s))

    def _known(self, recorded) -> bool:
        error = median_error(recorded)
        if error is None:
            return False
        median_target, pair_target = stop_targets(self.budget, statistics.median(recorded))
        return error <= median_target and all(
            len(ratios) >= MEDIAN_INTERVAL_MIN and half_width(paired_ratio(ratios)) <= pair_target
            for ratios in self.ratios().values())

    def ratios(self) -> dict:
        """name -> the case's throughput over the twin's, one per round: the median of the twin's block over the
        median of the case's own."""
        return {name: [statistics.median(twin) / statistics.median(own) for twin, own in zip(blocks, self.own_blocks)]
                for name, blocks in self.twin_blocks.items()}


@dataclass
class PhaseClock:
    """Where a session's time goes: wall seconds per phase (bench.core.records.PHASES), over the session and for the
    case in hand."""
    session: dict = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    case: dict = field(default_factory=dict)

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            self.session[phase] += spent
            self.case[phase] = self.case.get(phase, 0.0) + spent
