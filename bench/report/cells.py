"""A table cell's text, formatted at the last step from the numbers bench.report.select chose."""
from __future__ import annotations

from collections import Counter

MISSING = "-"
MARKS = {"faster": "▲", "slower": "▼", "within noise": "="}
MARKS_NOTE = "▲ faster, ▼ slower, = within noise (99%); † unpaired: from the two cases' own figures"


def num(value, fmt: str) -> str:
    return MISSING if value is None else format(value, fmt)


def pm(error, digits: int = 1) -> str:
    """A median's 95% interval as +-x%; '+-?' where the case had too few rounds to know it."""
    return f"±{error * 100:.{digits}f}%" if error is not None else "±?"


def si(value) -> str:
    """A count in the unit that fits it: 416.5 M, 15.47 G (a fixed GMACs column showed LeNet-5 as 0.000)."""
    if value is None:
        return MISSING
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {unit}"
    return f"{value:.4g}"


def ratio_cell(pair, marked: bool = False) -> str:
    """'1.23x ±4%', '0.54x ±25%†' (unpaired); with its verdict's mark where `marked`. An interval of 1000% or more
    (a ratio whose low end reaches 0) is left out."""
    interval = f" ±{pair.half95 * 100:.0f}%" if pair.half95 < 10 else ""
    return f"{pair.ratio:.2f}x{interval}{'' if pair.paired else '†'}" + (f" {MARKS[pair.word]}" if marked else "")


def mfu(value) -> str:
    """A model's utilization in %; above 100% the ceiling, not the model, is wrong: a probe read low."""
    if value is None:
        return MISSING
    return f"{value * 100:.1f}" if value <= 1 else "over the ceiling: it read low"


def verdict_counts(pairs) -> str:
    """'faster in 3, slower in 1, within noise in 5': the verdicts of a finding's ratios."""
    words = Counter(p.word for p in pairs)
    return f"faster in {words['faster']}, slower in {words['slower']}, within noise in {words['within noise']}"
