"""Is a change real? The noise between runs of the same code, and verdicts on a change in throughput against it."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..core.records import KERAS
from ..core.stats import (
    FAST_STEP_DRIFT,
    FAST_STEP_MS,
    MEDIAN_SE_FACTOR,
    STEP_DRIFT,
    half_width,
    log_half_width,
    one_pass_drift,
    robust_sigma,
    t95,
)


def step_class(step_ms: float | None) -> str:
    """The class of steps whose spread is pooled together: small steps drift more (unknown: fast)."""
    return "slow" if step_ms and step_ms >= FAST_STEP_MS else "fast"


CLASS_LABELS = {"fast": f"steps under {FAST_STEP_MS:g} ms", "slow": f"steps of {FAST_STEP_MS:g} ms or more"}
MODELS = "two models"  # a ratio of two models' steps (the cost example), whose spread between processes is its own


@dataclass(frozen=True)
class Spread:
    """The pooled standard deviation of a log between a run's worker processes (or passes), and its degrees of
    freedom."""
    sigma: float
    dof: int

    def half(self, units: int = 1, z: float = 1.96) -> float:
        """Half-width of the interval of a mean over `units`, at z's level, with Student's t for the dof."""
        return t95(self.dof) * z / 1.96 * self.sigma / math.sqrt(units)


def pool_key(step_ms: float | None, kind: str = "") -> str:
    """The spreads pooled together: by step class, and a ratio of two models apart from a ratio of two settings
    (on a 2-core Zen 4 the cost example's ratio moved between processes by 15-40%, a setting's by 2-4%)."""
    return f"{step_class(step_ms)}, {kind}" if kind else step_class(step_ms)


def _label(key: str) -> str:
    step, _, kind = key.partition(", ")
    return CLASS_LABELS[step] + (f" ({kind})" if kind else "")


def _pick(spreads: dict, key: str) -> Spread | None:
    """The spread of the key's pool; where it was not measured, the widest of those measured (not a narrower)."""
    return spreads.get(key) or max(spreads.values(), key=lambda s: s.sigma, default=None)


def _spread_text(spreads: dict, unit: str) -> str:
    where = ("between worker processes of the run (fresh processes, their own layout, thread pools and moment; the "
             "run's own process's offset from them taken out)" if unit == "process"
             else "between the run's passes (one process)")
    return where + ": " + "; ".join(f"{_label(k)} {s.sigma:.1%} ({s.dof} degrees of freedom)"
                                    for k, s in sorted(spreads.items()))


def _pool(groups, unit: str) -> dict:
    """key -> Spread, from (key, [one log per unit, the run's own process first]) groups: each group's squares about
    its own mean, pooled. Between processes, the run's own process is offset from fresh ones by its history (models
    built and freed before, on a 2-core Zen 4 its ratios 2% higher than the workers' on average), which a rerun's
    process shares: that offset is estimated per key and taken out (one degree of freedom)."""
    by_key = {}
    for key, logs in groups:
        if len(logs) > 1:
            by_key.setdefault(key, []).append(logs)
    spreads = {}
    for key, found in by_key.items():
        offset = 0.0
        if unit == "process" and len(found) > 1:
            offset = statistics.mean(logs[0] - statistics.mean(logs[1:]) for logs in found)
        squares, dof = 0.0, -1 if offset else 0
        for logs in found:
            logs = [logs[0] - offset, *logs[1:]]
            mean = sum(logs) / len(logs)
            squares += sum((x - mean) ** 2 for x in logs)
            dof += len(logs) - 1
        if dof > 0:
            spreads[key] = Spread(math.sqrt(squares / dof), dof)
    return spreads


def unit_of(cases) -> str:
    """'process' where the run timed some case in several worker processes, else 'pass'."""
    return "process" if any(len(c.get("process_p50_ms") or []) > 1 for c in cases) else "pass"


@dataclass(frozen=True)
class RunNoise:
    """How far a case's median may move between runs of the same code on this machine, in log terms."""
    spreads: dict  # step class -> Spread between units; empty where the run measured none
    probe_sigma: float | None  # the drift of the machine's speed probe over the run (the fallback's part)
    source: str
    unit: str = "process"

    def error(self, case) -> float:
        """Half-width of the 95% interval of the case's median between runs (log terms)."""
        within = case.get("median_error")
        spread = _pick(self.spreads, pool_key(case.get("latency_p50_ms")))
        if spread is not None:  # the spread between units holds the noise within them
            return spread.half(len([p for p in case.get(f"{self.unit}_p50_ms") or [] if p]) or 1)
        if self.probe_sigma is None:
            return within if within is not None else math.inf
        # the fallback: the probe's drift, and the step's own beyond it, which the probe does not see
        sigma = math.hypot(self.probe_sigma, one_pass_drift(case.get("latency_p50_ms")))
        return math.inf if within is None else math.hypot(1.96 * sigma, within)


FALLBACK = (f"not measured, so the fallback constants: {STEP_DRIFT:.0%}, {FAST_STEP_DRIFT:.0%} for a step under "
            f"{FAST_STEP_MS:g} ms (fitted on a shared 2-core Zen 3, not on this machine)")


def run_noise(cases) -> RunNoise:
    """The spread of a case's median between worker processes (or else passes), pooled over the run's cases by step
    class; else the drift of the machine's speed probe over the run and the fallback constants.

    Measured on a 2-core cloud VM: the speed of a fixed matmul wandered by 2x within two minutes, and runs of the
    same code differed by up to 2.4x in a case, so the spread of rounds within a case says little about the next run.
    """
    unit = unit_of(cases)
    spreads = _pool(((pool_key(c.get("latency_p50_ms")), [math.log(p) for p in c.get(f"{unit}_p50_ms") or [] if p])
                     for c in cases), unit)
    speeds = [math.log(s) for c in cases for s in c.get("machine_speeds_flops") or []]
    probe = robust_sigma(speeds) if len(speeds) >= 3 else None
    if spreads:
        return RunNoise(spreads, probe, _spread_text(spreads, unit), unit)
    if probe is not None:
        return RunNoise({}, probe, f"the drift of the machine's speed probe, and a step's beyond it {FALLBACK}", unit)
    return RunNoise({}, None, "the medians' own intervals only (nothing recorded of the noise between runs)", unit)


PAIRED_INTERVAL = ("from the rounds of the two timed side by side, with the drift of such a ratio between runs (the "
                   "spread between worker processes the run measured, by step class; the findings say where it came "
                   "from)")


@dataclass(frozen=True)
class RatioNoise:
    """How far a run's paired ratios move between runs, beyond what their pairs show (log terms): the term that an
    interval taken within one case's seconds lacks."""
    spreads: dict  # step class -> Spread; empty: the fallback constants
    source: str
    unit: str = "process"

    @property
    def brief(self) -> str:
        """Where the drift between runs came from, in a few words, for a finding."""
        if not self.spreads:
            return "fallback constants, not measured on this machine"
        return ("measured between the run's worker processes" if self.unit == "process"
                else "measured between the run's passes, in one process")

    def widened(self, summary: dict, units: int, step_ms: float | None = None, kind: str = "") -> dict:
        """A paired ratio's summary whose ci95 and ci99 also hold the drift between runs (of the mean over its
        `units`), root sum of squares in log terms; the pairs' own intervals kept as in_run95 and in_run99."""
        ratio, widened = summary["ratio"], dict(summary)
        spread = _pick(self.spreads, pool_key(step_ms, kind))
        for level, z in (("95", 1.96), ("99", 2.576)):
            low, high = summary[f"ci{level}"]
            widened[f"in_run{level}"] = [low, high]
            drift = spread.half(units, z) if spread else z * one_pass_drift(step_ms) / math.sqrt(units)
            down = math.hypot(math.log(ratio / low), drift) if low > 0 else math.inf
            up = math.hypot(math.log(high / ratio), drift)
            widened[f"ci{level}"] = [ratio * math.exp(-down), ratio * math.exp(up)]
        return widened


def pair_kind(case, paired) -> str:
    """MODELS where the twin is another model (the cost example), else '' (a setting)."""
    return "" if paired["against"].startswith(f"{case['model']}-") else MODELS


def ratio_noise(cases) -> RatioNoise:
    """The spread of each paired ratio's log between worker processes (or else passes), pooled over the run by step
    class and kind, less the part its pairs' own intervals account for (a variance component); else the fallback
    constants."""
    unit = unit_of(cases)
    groups, own = [], {}
    for case in cases:
        for paired in case.get("paired") or []:
            units = paired.get(f"by_{unit}") or []
            if len(units) < 2:
                continue
            key = pool_key(case.get("latency_p50_ms"), pair_kind(case, paired))
            groups.append((key, [math.log(p["ratio"]) for p in units]))
            own.setdefault(key, []).extend((math.log(p["ci95"][1] / p["ci95"][0]) / (2 * 1.96)) ** 2
                                           for p in units if p["ci95"][0] > 0)
    spreads = {key: Spread(math.sqrt(max(0.0, s.sigma ** 2 - statistics.mean(own.get(key) or [0.0]))), s.dof)
               for key, s in _pool(groups, unit).items()}
    if not spreads:
        return RatioNoise({}, f"one process, one pass: {FALLBACK}", unit)
    return RatioNoise(spreads, _spread_text(spreads, unit) + ", beyond the pairs' own", unit)


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


NO_NOISE = RunNoise({}, None, "")


def verdict(base, new, base_noise: RunNoise = NO_NOISE, new_noise: RunNoise = NO_NOISE,
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


@dataclass(frozen=True)
class Pair:
    base: dict
    new: dict
    ratio: float  # throughput of new over base
    band: float  # the verdict's noise band, log terms (99%)
    word: str  # faster, slower, within noise
    paired: bool = False  # timed round by round beside its twin (else: two cases' figures, minutes apart)
    half95: float = math.inf  # half-width of the ratio's 95% interval, relative to it
    low: float = 0.0  # the ratio's 99% interval, which the verdict and the plots' bars use
    high: float = math.inf
    in_run95: float = math.inf  # of half95, what the pairs alone show (without the drift between moments)

    @property
    def label(self) -> str:
        deployed = self.new.get("runtime", KERAS) != KERAS
        runtime = f", {self.new['runtime_label']} {self.new['precision']}" if deployed else ""
        return f"{self.new['model']}{runtime}, bs {self.new['batch_size']}"


def judged(base, new, base_noise, new_noise) -> Pair:
    """The ratio of two cases' throughputs and its verdict at 99%: from the pairs timed round by round where the
    harness timed `new` beside `base` (the order-statistics interval of the median paired ratio); else from the two
    cases' own figures, against the noise between passes of the run (bench.report.noise)."""
    paired = next((p for p in new.get("paired") or [] if p["against"] == base["case"]), None)
    if paired is not None:
        ratio, (low, high) = paired["ratio"], paired["ci99"]
        word = "faster" if low > 1 else "slower" if high < 1 else "within noise"
        band = log_half_width(paired, "ci99")
        in_run = half_width({"ratio": ratio, "ci95": paired.get("in_run95") or paired["ci95"]})
        return Pair(base, new, ratio, band, word, True, half_width(paired), low, high, in_run)
    change, band, word = verdict(base, new, base_noise, new_noise)
    ratio = 1 + change
    return Pair(base, new, ratio, band, word, False, math.expm1(band / VERDICT_WIDENING),
                ratio * math.exp(-band), ratio * math.exp(band))
