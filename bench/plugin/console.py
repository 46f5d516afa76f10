"""What a benchmark session prints: the header that says what it will do, and one line per case as it runs."""
from __future__ import annotations

import textwrap
import time

import pytest

from ..core.stats import FAST_STEP_MS
from ..engines import current as engine
from ..measure import device
from ..measure.matrix import PRECISIONS
from ..measure.timing import PAIR_TARGET, stop_targets
from . import session as sessions

NAME_WIDTH = 46  # the longest case id, inception_v4-train-bs256-noxla-mixed_bfloat16
WIDTH = 120  # the terminal the main job's output fits


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _precisions(harness) -> str:
    kept = harness.matrix.precisions
    ratios = harness.speedups
    if harness.matrix.explicit_precisions:
        named = ", ".join(f"{p} ({ratios[p]:.2f}x)" for p in kept if p != "float32")
        return f"in {', '.join(kept)} as named" + (f"; ceilings over float32's: {named}" if named else "")
    left = [p for p in PRECISIONS if p in ratios and p not in kept]
    text = f"in {', '.join(kept)}"
    if left:
        text += (f"; {' and '.join(left)} left out: ceiling {', '.join(f'{ratios[p]:.2f}x' for p in left)} "
                 f"float32's, fast from {device.FAST_MARGIN}x (--precision runs it)")
    return text


def header(harness, traces: bool) -> list[str]:
    matrix, planner = harness.matrix, harness.planner
    ceiling = harness.peaks.flops("float32")
    backend = f"{engine().NAME} {engine().versions()[f'{engine().NAME}_version']}"
    lines = [f"cnnbench: {len(matrix.cases())} cases of {len(matrix.models)} models on {device.device_name()} with "
             f"{backend}, "
             f"float32 ceiling {ceiling / 1e12:.3g} TFLOP/s",
             f"cnnbench: {_precisions(harness)}",
             f"cnnbench: each case: first call timed apart, then timed rounds until its median is known to "
             f"±{harness.budget.target_error:.0%} and its ratio to each reference twin, timed beside it round by "
             f"round, to ±{PAIR_TARGET:.0%} (or to half the drift between runs that the report adds, where wider: "
             f"±{stop_targets(harness.budget, 1.0)[0]:.0%} for a median, ±{stop_targets(harness.budget, 0.0)[1]:.0%} "
             f"for a step under {FAST_STEP_MS:g} ms), or until "
             f"{matrix.case_seconds:g} s are spent, {matrix.min_rounds} at least"
             + (f", over {matrix.passes} passes" if matrix.passes > 1 else "")
             + ("; and a profiler trace" if traces else "; no traces"),
             "cnnbench: pytest-benchmark's defaults line above does not apply: the harness sets each case's rounds"]
    if planner is None:
        lines.append("cnnbench: no time budget (--time-budget MINUTES sets one)")
    else:
        chosen, seconds, timed = planner.choose(time.perf_counter())
        outside = len(planner.visits) - len(chosen)
        lines.append(f"cnnbench: plan for the {matrix.time_budget:g} min budget: {len(chosen)} of "
                     f"{len(planner.visits)} cases, about {_minutes(seconds + planner.reserve)} from now, "
                     f"{timed / (seconds + planner.reserve):.0%} of it in timed rounds"
                     + (f"; {outside} outside it, skipped and listed in the report" if outside else ""))
        lines.append("cnnbench: in this priority, every model's cases of a tier before the next tier's: "
                     + "; ".join(f"{index} {label} ({count if count == total else f'{count} of {total}'})"
                                 for index, (label, count, total) in enumerate(
                                     [tier for tier in planner.by_tier(chosen) if tier[2]], 1)))
    return [wrapped for line in lines
            for wrapped in textwrap.wrap(line, WIDTH, subsequent_indent=" " * len("cnnbench: "))]


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:.3g} ms"


class Progress:
    """One line per case at the default verbosity: its place, its name, its median and the plan's time left."""

    def __init__(self, config):
        self.config = config
        self.positions: dict[str, tuple[int, int]] = {}
        self.reported: set[str] = set()
        self.left: float | None = None  # the plan's seconds left after the last case

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        self.positions = {item.nodeid: (index, len(items)) for index, item in enumerate(items, 1)}
        self.last = items[-1].nodeid if items else None
        reporter = self._reporter()
        if reporter is not None:
            reporter.showfspath = False  # each item has its own line instead of a file's row of letters

    def _reporter(self):
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def pytest_runtest_logstart(self, nodeid, location):
        reporter = self._reporter()
        if nodeid not in self.positions or reporter is None:
            return
        index, total = self.positions[nodeid]
        case_id = nodeid.rsplit("[", 1)[-1].rstrip("]") if nodeid.endswith("]") else nodeid.rsplit("::", 1)[-1]
        reporter.write(f"[{index:>{len(str(total))}}/{total}] {case_id:<{NAME_WIDTH}} ")
        reporter.flush()

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config):
        """No letter for a case: its own line says how it went."""
        if report.nodeid in self.positions and (report.passed or report.skipped) and (
                report.when == "call" or report.skipped):  # a failure keeps pytest's letter
            return report.outcome, "", report.outcome.upper()
        return None

    def pytest_runtest_logreport(self, report):
        reporter = self._reporter()
        if (reporter is None or report.nodeid not in self.positions or report.nodeid in self.reported
                or (report.passed and report.when != "call")):
            return
        self.reported.add(report.nodeid)
        harness = sessions.of(self.config).harness
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            text, markup = f"skipped: {reason.removeprefix('Skipped: ')}", {"yellow": True}
        elif report.failed:
            text, markup = f"FAILED ({report.when})", {"red": True}
        else:
            result = harness.last_result if harness else None
            if result is not None and not report.nodeid.endswith(f"[{result['case']}]"):
                result = None
            text = (result["summary"] if result and "summary" in result else
                    f"{_duration(result['median_s'])} ±{result['error']:.1%}, {result['rounds']} rounds"
                    if result and result.get("error") is not None else
                    f"{_duration(result['median_s'])}, {result['rounds']} rounds" if result else "done")
            markup = {"green": True}
        reporter.write(text, **markup)
        if harness is not None and harness.planner is not None and "[" in report.nodeid:
            left = harness.planner.seconds_left(time.perf_counter())
            # the plan is revised with each measured case: time left can grow when cases ran slower than estimated
            revised = ", revised up" if self.left is not None and round(left / 6) > round(self.left / 6) else ""
            reporter.write(f"  ({_minutes(left)} left{revised})")
            self.left = left
        if report.nodeid != self.last:  # pytest ends the last line with its [100%]
            reporter.write("\n")
        reporter.flush()
