"""The clock: compile time apart, a pilot that warms up and sizes the run, then timed rounds."""
from __future__ import annotations

import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from ..core.records import PHASES
from ..core.stats import MEDIAN_SE_FACTOR, t95
from ..engines import current as engine

FIRST_CALL_MATCH_LIMIT = 4.0  # timed rounds stretch to the first call's length, up to this many times their seconds


def timed_seconds(max_seconds: float, first_call_s: float) -> float:
    """A case's timed rounds last as long as its first call took, within FIRST_CALL_MATCH_LIMIT times its seconds:
    once a step has cost 15 s to trace and optimise, three rounds of it would be a poor return on that time."""
    return max(max_seconds, min(first_call_s, FIRST_CALL_MATCH_LIMIT * max_seconds))


@dataclass(frozen=True)
class Budget:
    min_rounds: int = 5
    max_seconds: float = 2.0  # timed rounds of one case stop once they would run longer than this
    target_error: float = 0.02  # stop once the median's 95% interval is within this fraction of it
    pilot_rounds: int = 3
    within_time: bool = False  # min_rounds give way to max_seconds (the latency scenario's stated time limit)
    fixed_pilot: bool = False  # always pilot_rounds: a cluster's workers run the same steps (engines.distribute)

    def after_first_call(self, first_call_s: float) -> Budget:
        """Timed rounds as long as the first call took, within limits (timed_seconds)."""
        if self.within_time:
            return self
        return replace(self, max_seconds=timed_seconds(self.max_seconds, first_call_s))


def timed_call(fn, *args) -> float:
    """Seconds from the call until the device has finished the work it queued."""
    start = time.perf_counter()
    engine().wait(fn(*args))
    return time.perf_counter() - start


def pilot(fn, args, budget: Budget) -> list[float]:
    """Warm-up rounds (not reported) whose spread sizes the timed run; at least two unless one is too long."""
    samples = [timed_call(fn, *args)]
    while len(samples) < budget.pilot_rounds and (budget.fixed_pilot or sum(samples) < budget.max_seconds / 4):
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
