"""Two runs case by case: the change of each case's throughput, its noise band and the verdict; a summary for the
terminal, the whole table for a file."""
from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

from models.registry import natural_key

from ..core.stats import log_half_width
from .cells import MISSING, num
from .noise import band_text, machine_shift, verdict

HEADERS = ("case", "device", "base", "new", "change (%)", "noise band (%)", "verdict")
RATIO_HEADERS = ("case", "against", "base", "new", "change (%)", "band (%)", "")
LARGEST = 5  # changes the terminal summary names, each way


class Change(NamedTuple):
    """A case in both runs, or in one: throughputs, the change (a fraction), the band (log terms) and the verdict;
    numbers, formatted only where written (as_rows)."""
    case: str
    device: str
    base: float | None
    new: float | None
    change: float | None
    band: float | None
    verdict: str


def compare(base_run, new_run):
    """(caption, changes, slower): `slower` lists (case, percent) of the cases judged slower."""
    base = {(c["device"], c["case"]): c for c in (*base_run.cases, *base_run.scaled)}
    new = {(c["device"], c["case"]): c for c in (*new_run.cases, *new_run.scaled)}
    noises = base_run.noise, new_run.noise
    shift, shift_error, shift_note = machine_shift(base_run, new_run)
    changes, slower = [], []
    for key in sorted(base.keys() | new.keys(), key=lambda k: natural_key(k[1])):
        device, case = key
        old, now = (base.get(key) or {}).get("throughput"), (new.get(key) or {}).get("throughput")
        if key not in new or key not in base:
            changes.append(Change(case, device, old, now, None, None, "only in new" if key in new else "only in base"))
        elif not (old and now):
            changes.append(Change(case, device, None, None, None, None, "no throughput"))
        else:
            change, band, word = verdict(base[key], new[key], *noises, shift, shift_error)
            changes.append(Change(case, device, old, now, change, band, word))
            if word == "slower":
                slower.append((case, -change * 100))
    sources = [n.source for n in noises]
    said = (f"both runs: {sources[0]}" if sources[0] == sources[1] else
            "; ".join(f"{r.name}: {s}" for r, s in zip((base_run, new_run), sources)))
    caption = (f"Throughput of {new_run.name} against {base_run.name} (samples/s; change in %; a verdict needs a "
               f"change, less the machine's own, outside the noise band, which allows for the noise between runs of "
               f"the same code ({said}); {shift_note})")
    return caption, changes, slower


def as_rows(changes) -> list[tuple]:
    """The compare table's rows: each change written out."""
    return [(c.case, c.device, num(c.base, ",.1f"), num(c.new, ",.1f"),
             MISSING if c.change is None else f"{c.change * 100:+.1f}",
             MISSING if c.band is None else band_text(c.band), c.verdict) for c in changes]


class RatioChange(NamedTuple):
    """A paired ratio both runs measured: its two values, the change and the band (log terms), and whether it agrees."""
    case: str
    against: str
    base: float
    new: float
    change: float
    band: float
    agrees: bool


def compare_ratios(base_run, new_run):
    """(caption, ratio changes) of the paired ratios both runs measured (a case over the twin timed beside it):
    whether each run's ratio lies within the two runs' 95% intervals of the other's, root sum of squares in log
    terms. Between runs of the same code this is the A/A of ratios: about 95% should agree."""
    def by_key(run):
        return {(c["device"], c["case"], p["against"]): p for c in run.cases for p in c.get("paired") or []}
    base, new = by_key(base_run), by_key(new_run)
    changes = []
    for key in sorted(base.keys() & new.keys(), key=lambda k: (natural_key(k[1]), k[2])):
        old, now = base[key], new[key]
        change, band = math.log(now["ratio"] / old["ratio"]), math.hypot(log_half_width(old), log_half_width(now))
        changes.append(RatioChange(key[1], key[2], old["ratio"], now["ratio"], change, band, abs(change) <= band))
    caption = (f"Paired ratios of {new_run.name} against {base_run.name} (a case's throughput over its twin's, timed "
               "side by side; 'agrees' where the change is within the root sum of squares of the two 95% intervals, "
               f"which hold the drift between runs: {base_run.ratio_noise.source}; {new_run.ratio_noise.source})")
    return caption, changes


def ratio_rows(changes) -> list[tuple]:
    return [(c.case, c.against, f"{c.base:.3f}", f"{c.new:.3f}", f"{math.expm1(c.change) * 100:+.1f}",
             band_text(c.band), "agrees" if c.agrees else "moved") for c in changes]


def terminal_summary(base_run, new_run, changes, written: str, ratios=()) -> list[str]:
    """Counts of each verdict and the largest changes each way; the table itself is in the file."""
    words = Counter(c.verdict for c in changes)
    lines = [f"{new_run.name} against {base_run.name}: {len(changes)} cases; "
             + ", ".join(f"{words[w]} {w}" for w in ("slower", "faster", "within noise"))
             + "".join(f", {n} {w}" for w, n in words.items() if w not in ("slower", "faster", "within noise"))]
    for word in ("slower", "faster"):
        found = sorted((c for c in changes if c.verdict == word), key=lambda c: -abs(c.change))
        if found:
            lines.append(f"largest {word}: " + ", ".join(f"{c.case} {c.change * 100:+.1f}% (band {band_text(c.band)})"
                                                         for c in found[:LARGEST]))
    if ratios:
        agreed = sum(c.agrees for c in ratios)
        moved = sorted((c for c in ratios if not c.agrees), key=lambda c: -abs(c.change))
        lines.append(f"paired ratios in both runs: {len(ratios)}, {agreed} ({agreed / len(ratios):.0%}) agree "
                     "within their 95% intervals" + ("; moved most: " + ", ".join(
                         f"{c.case} {math.expm1(c.change) * 100:+.1f}% (band {band_text(c.band)})"
                         for c in moved[:LARGEST]) if moved else ""))
    lines.append(f"wrote {written} (every case, its noise band and verdict"
                 + (", and the paired ratios)" if ratios else ")"))
    return lines
