"""Is a change real? The noise between runs of the same code, and verdicts on a change in throughput against it."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..core.stats import FAST_STEP_DRIFT, FAST_STEP_MS, MEDIAN_SE_FACTOR, STEP_DRIFT, one_pass_drift, robust_sigma, t95


@dataclass(frozen=True)
class RunNoise:
    """How far a case's median may move between runs of the same code on this machine, in log terms."""
    sigma: float | None  # of one pass's median; None: the run recorded nothing to estimate it
    dof: int | None  # degrees of freedom of the pooled spread between passes; None: from the machine's drift
    source: str

    def error(self, case) -> float:
        """Half-width of the 95% interval of the case's median between runs (log terms)."""
        within = case.get("median_error")
        passes = len([p for p in case.get("pass_p50_ms") or [] if p]) or 1
        if self.sigma is None:
            return within if within is not None else math.inf
        if self.dof:  # the spread between passes holds the noise within them
            return t95(self.dof) * self.sigma / math.sqrt(passes)
        # one pass: the probe's drift, and the step's own beyond it, which the probe does not see
        sigma = math.hypot(self.sigma, one_pass_drift(case.get("latency_p50_ms")))
        return math.inf if within is None else math.hypot(1.96 * sigma, within)


def run_noise(cases) -> RunNoise:
    """The spread between passes of the same case, pooled over the run's cases (`--passes 2` or more); else the
    drift of the machine's speed probe over the run (1.4826 MAD of its log), which a shared machine needs.

    Measured on a 2-core cloud VM: the speed of a fixed matmul wandered by 2x within two minutes, and runs of the
    same code differed by up to 2.4x in a case, so the spread of rounds within a case says little about the next run.
    """
    squares, dof = 0.0, 0
    for case in cases:
        logs = [math.log(p) for p in case.get("pass_p50_ms") or [] if p]
        if len(logs) > 1:
            mean = sum(logs) / len(logs)
            squares += sum((x - mean) ** 2 for x in logs)
            dof += len(logs) - 1
    if dof:
        return RunNoise(math.sqrt(squares / dof), dof, f"spread between passes ({dof} degrees of freedom)")
    speeds = [math.log(s) for c in cases for s in c.get("machine_speeds_flops") or []]
    if len(speeds) >= 3:
        return RunNoise(robust_sigma(speeds), None,
                        f"drift of the machine's speed, and a step's beyond it ({STEP_DRIFT:.0%}, "
                        f"{FAST_STEP_DRIFT:.0%} under {FAST_STEP_MS:g} ms; one pass: save runs with --passes 3 for a "
                        "firmer verdict)")
    return RunNoise(None, None, "the medians' own intervals only (nothing recorded of the noise between runs)")


PAIRED_INTERVAL = (f"from the rounds of the two timed side by side, with the drift of such a ratio between moments of "
                   f"the machine (measured between the run's passes; for a run of one pass {STEP_DRIFT:.0%}, and "
                   f"{FAST_STEP_DRIFT:.0%} for a step under {FAST_STEP_MS:g} ms)")


@dataclass(frozen=True)
class RatioNoise:
    """How far a run's paired ratios move between moments of the machine, beyond what their pairs show (log terms):
    the term that an interval taken within one case's seconds lacks."""
    sigma: float
    dof: int | None  # of the spread between passes; None: STEP_DRIFT
    source: str

    def widened(self, summary: dict, passes: int, step_ms: float | None = None) -> dict:
        """A paired ratio's summary whose ci95 and ci99 also hold the drift between moments (of the mean over its
        `passes`; in a run of one pass, by the case's step time), root sum of squares in log terms; the pairs' own
        intervals kept as in_run95 and in_run99."""
        ratio, widened = summary["ratio"], dict(summary)
        sigma = self.sigma if self.dof else one_pass_drift(step_ms)
        for level, z in (("95", 1.96), ("99", 2.576)):
            low, high = summary[f"ci{level}"]
            widened[f"in_run{level}"] = [low, high]
            drift = (t95(self.dof) * z / 1.96 if self.dof else z) * sigma / math.sqrt(passes)
            down = math.hypot(math.log(ratio / low), drift) if low > 0 else math.inf
            up = math.hypot(math.log(high / ratio), drift)
            widened[f"ci{level}"] = [ratio * math.exp(-down), ratio * math.exp(up)]
        return widened


def ratio_noise(cases) -> RatioNoise:
    """From a run of several passes, the spread between passes of each paired ratio's log, pooled over the run,
    less the part its pairs' own intervals account for (a variance component); else STEP_DRIFT."""
    squares, dof, own = 0.0, 0, []
    for case in cases:
        for paired in case.get("paired") or []:
            passes = paired.get("by_pass") or []
            if len(passes) < 2:
                continue
            logs = [math.log(p["ratio"]) for p in passes]
            mean = sum(logs) / len(logs)
            squares += sum((x - mean) ** 2 for x in logs)
            dof += len(logs) - 1
            own.extend((math.log(p["ci95"][1] / p["ci95"][0]) / (2 * 1.96)) ** 2 for p in passes if p["ci95"][0] > 0)
    if not dof:
        return RatioNoise(STEP_DRIFT, None, f"one pass: the drift measured on shared 2-core VMs, {STEP_DRIFT:.0%} "
                                             f"({FAST_STEP_DRIFT:.0%} for a step under {FAST_STEP_MS:g} ms)")
    within = sum(own) / len(own) if own else 0.0
    sigma = math.sqrt(max(0.0, squares / dof - within))
    return RatioNoise(sigma, dof, f"the spread between passes ({dof} degrees of freedom), {sigma:.1%}")


NOISE_FLOOR = 0.01
# Verdicts at 99%, not the intervals' 95%: a compare makes 24 to 130 case comparisons, and on a shared VM the
# 95% bands gave 4.4% and 7.6% false verdicts in two A/A sets (the noise model is not exact); 99% gave 1.0% and 3.5%.
VERDICT_WIDENING = 2.576 / 1.96


def machine_shift(base_run, new_run) -> tuple[float, float, str]:
    """How much faster the machine itself ran in NEW than in BASE (log of the ratio of the medians of the speed probe
    taken beside every case), the 95% half-width of that figure, and a note for the caption.

    Runs of the same code on a shared VM differed by 25% overall (every case alike) when the host was busy during
    one of them, and the probe saw it (92 against 120 GFLOP/s): corrected for it, the A/A false verdicts of ten smoke
    runs fell from 12% to under 5%. Only like is corrected with like: the same device, TensorFlow and usable cores.
    """
    keys = ("device", "tensorflow_version", "cpu_cores_usable")
    speeds = [[math.log(s) for c in run.cases for s in c.get("machine_speeds_flops") or []]
              for run in (base_run, new_run)]
    if any(len(logs) < 3 for logs in speeds):
        return 0.0, 0.0, "no machine correction (a run recorded no speed probe)"
    if any(base_run.machine.get(k) is None or base_run.machine.get(k) != new_run.machine.get(k) for k in keys):
        return 0.0, 0.0, "no machine correction (the runs differ in device, TensorFlow or usable cores)"
    shift = statistics.median(speeds[1]) - statistics.median(speeds[0])
    # the standard error of a median, from the probe's robust spread in each run
    error = 1.96 * math.sqrt(sum((MEDIAN_SE_FACTOR * robust_sigma(logs)) ** 2 / len(logs) for logs in speeds))
    moved = f"{abs(math.expm1(shift)) * 100:.1f}% {'faster' if shift > 0 else 'slower'}"
    return shift, error, f"the machine ran {moved} in the new run (±{error * 100:.1f}%), corrected for"


def verdict(base, new, base_noise: RunNoise = RunNoise(None, None, ""), new_noise: RunNoise = RunNoise(None, None, ""),
            shift: float = 0.0, shift_error: float = 0.0) -> tuple[float, float, str]:
    """(change in throughput, noise band in log terms, verdict): the verdict is on the change less the machine's own
    change in speed (`shift`, in log terms), outside both runs' noise between runs and the shift's own error, at 99%.

    On a shared machine the drift between runs dominates: an A/A compare that used the spread within runs alone
    judged 50 of 72 cases "slower" or "faster", every one falsely.
    """
    change = new["throughput"] / base["throughput"] - 1
    band = max(VERDICT_WIDENING * math.sqrt(base_noise.error(base) ** 2 + new_noise.error(new) ** 2 + shift_error ** 2),
               NOISE_FLOOR)
    log_change = math.log1p(change) - shift
    word = "faster" if log_change > band else "slower" if log_change < -band else "within noise"
    return change, band, word


def band_text(band: float) -> str:
    """A band in log terms as the percentages it allows down and up."""
    return f"-{-math.expm1(-band) * 100:.1f}/+{math.expm1(band) * 100:.1f}" if math.isfinite(band) else "±inf"
