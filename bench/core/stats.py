"""Statistics of timed rounds: true percentiles, the precision of a median. No TensorFlow here (the report uses it)."""
from __future__ import annotations

import math
import statistics

import numpy as np

MEDIAN_SE_FACTOR = 1.2533  # the standard error of a median is ~1.2533 sigma/sqrt(n) for normal noise
MEDIAN_INTERVAL_MIN = 6  # the fewest values whose range holds their median with 95% (1 - 2 / 2**6)
# Student's t, two-sided 95%, for 1..30 degrees of freedom: with the 3 to 10 rounds of a slow case, 1.96 would
# state an interval up to 2.2x too narrow.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# MLPerf LoadGen's minimum sample counts: below them a "p90" or "p99" is the maximum, or close to it.
PERCENTILE_MIN_SAMPLES = {"p90": 64, "p99": 662}

# A step's drift between moments of the machine that a run of one pass cannot measure (the sd of its log): of a
# paired ratio beyond its pairs' own noise (the pairs of one case span seconds and see one moment, and the load
# changes what a setting buys: XLA on conv5x5 read 1.38x on a quiet Zen 4, 1.5-1.7x on a busy one), and of a case's
# median beyond the speed probe's (a matmul's drift does not see a step that contends for the scheduler). Small steps
# drift more. Measured by A/A of default runs (one pass each): on a 2-core Intel Xeon, 88 paired ratios moved by 2.4%
# typically against intervals of ±3%. On a 2-core Zen 3, 2% and 8% (chosen on two runs) held out of sample for 91.4%
# of 1,326 ratios shared by ten pairs of five later runs, and case verdicts on the probe's drift alone were false for
# 12.4% of 1,655 cases (20% of the steps under 10 ms); with 4% and 12%, chosen on those ten pairs, 95.3% of the ratios
# agreed and 2.5% of the case verdicts were false; out of sample, a sixth run against the five, 90.2% and 3.4%.
STEP_DRIFT = 0.04
FAST_STEP_MS, FAST_STEP_DRIFT = 10.0, 0.12


def one_pass_drift(step_ms: float | None) -> float:
    """STEP_DRIFT, or FAST_STEP_DRIFT for a step under FAST_STEP_MS (unknown: fast)."""
    return STEP_DRIFT if step_ms and step_ms >= FAST_STEP_MS else FAST_STEP_DRIFT


def t95(dof: int) -> float:
    return T95[dof - 1] if dof <= len(T95) else 1.96 + 2.5 / dof  # within 0.001 of the table's tail


def robust_sigma(values) -> float:
    """The standard deviation of normal noise, estimated from the median absolute deviation (outliers ignored)."""
    middle = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - middle) for v in values)


def median_error(samples) -> float | None:
    """Half-width of the 95% interval of the median, relative to the median; None from fewer than 2 samples.

    From MEDIAN_INTERVAL_MIN samples on, the distribution-free interval between two order statistics (outliers, which
    step times have, do not widen it); below that, the normal approximation with Student's t. The wider side is
    reported.
    """
    n = len(samples)
    median = statistics.median(samples) if n else 0.0
    if n < 2 or median <= 0:
        return None
    if n < MEDIAN_INTERVAL_MIN:
        return t95(n - 1) * MEDIAN_SE_FACTOR * statistics.stdev(samples) / math.sqrt(n) / median
    low, high = median_interval(samples)
    return max(median - low, high - median) / median


def median_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The distribution-free interval [x_(k), x_(n+1-k)] that holds the median with probability `level` (the whole
    range where n is too small for it)."""
    ordered, n = sorted(values), len(values)
    k = _order_statistic_rank(n, level)
    return ordered[k - 1], ordered[n - k]


def _order_statistic_rank(n: int, level: float = 0.95) -> int:
    """The largest k for which [x_(k), x_(n+1-k)] holds the median with probability >= level (binomial, p = 1/2)."""
    log_half_n = n * math.log(0.5)
    tail, k = 0.0, 0  # tail = P(Binomial(n, 1/2) <= k - 1)
    while True:
        next_tail = tail + math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        if 1 - 2 * next_tail < level:
            return max(k, 1)
        tail, k = next_tail, k + 1


def paired_ratio(ratios) -> dict:
    """The median of paired ratios with its 95% and 99% order-statistics intervals: each pair was timed at the same
    moment of the machine, so its drift cancels in the ratio, and the median needs no model of the noise."""
    return {"ratio": statistics.median(ratios), "ci95": list(median_interval(ratios, 0.95)),
            "ci99": list(median_interval(ratios, 0.99)), "pairs": len(ratios)}


def half_width(summary: dict, level: str = "ci95") -> float:
    """The wider side of a paired ratio's interval, relative to the ratio."""
    low, high = summary[level]
    return max(summary["ratio"] - low, high - summary["ratio"]) / summary["ratio"]


def log_half_width(summary: dict, level: str = "ci95") -> float:
    """The wider side of a paired ratio's interval in log terms (inf where it reaches down to 0)."""
    low, high = summary[level]
    return math.log(max(high / summary["ratio"], summary["ratio"] / low)) if low > 0 else math.inf


def latency_summary_ms(samples_s) -> dict:
    """True percentiles of the raw samples (not pytest-benchmark's quartiles), in milliseconds.

    A tail percentile is None when there are too few samples for it to be more than the maximum.
    """
    ms = np.asarray(samples_s, dtype=float) * 1e3
    summary = {"samples": len(ms), "p50": float(np.median(ms))}
    for name, minimum in PERCENTILE_MIN_SAMPLES.items():
        summary[name] = float(np.percentile(ms, int(name[1:]))) if len(ms) >= minimum else None
    summary.update({"mean": float(ms.mean()), "min": float(ms.min()), "max": float(ms.max()),
                    "stdev": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0})
    return summary
