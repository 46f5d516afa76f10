"""The clock: compile time apart, a pilot that warms up and sizes the run, then timed rounds."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np

from .device import sync

Z95 = 1.96
MEDIAN_SE_FACTOR = 1.2533  # the standard error of a median is ~1.2533 sigma/sqrt(n) for normal noise


@dataclass(frozen=True)
class Budget:
    min_rounds: int = 5
    max_seconds: float = 2.0  # timed rounds of one case stop once they would run longer than this
    target_error: float = 0.02  # stop once the median's 95% interval is within this fraction of it
    pilot_rounds: int = 3


def timed_call(fn, *args) -> float:
    """Seconds from the call until the device has finished the work it queued."""
    start = time.perf_counter()
    fn(*args)
    sync()
    return time.perf_counter() - start


def pilot(fn, args, budget: Budget) -> list[float]:
    """Warm-up rounds (not reported) whose spread sizes the timed run; at least two unless one is too long."""
    samples = [timed_call(fn, *args)]
    while len(samples) < budget.pilot_rounds and sum(samples) < budget.max_seconds / 4:
        samples.append(timed_call(fn, *args))
    return samples


def plan_rounds(pilot_samples: list[float], budget: Budget) -> tuple[int, str]:
    """Rounds to time and why that many: 'precision' (median known well enough), 'budget' or 'min_rounds'."""
    median = statistics.median(pilot_samples)
    spread = statistics.stdev(pilot_samples) if len(pilot_samples) > 1 else median * 0.1
    needed = math.ceil((Z95 * MEDIAN_SE_FACTOR * spread / (budget.target_error * median)) ** 2)
    affordable = max(1, math.floor(budget.max_seconds / median))
    if needed <= affordable:
        rounds, reason = needed, "precision"
    else:
        rounds, reason = affordable, "budget"
    if rounds < budget.min_rounds:
        return budget.min_rounds, "min_rounds"
    return rounds, reason


def latency_summary_ms(samples_s) -> dict:
    """True percentiles of the raw samples (not pytest-benchmark's quartiles), in milliseconds."""
    ms = np.asarray(samples_s, dtype=float) * 1e3
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return {"p50": p50, "p90": p90, "p99": p99, "mean": float(ms.mean()), "min": float(ms.min()),
            "stdev": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0}
