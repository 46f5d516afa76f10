"""Two runs case by case: the change of each case's throughput, its noise band and the verdict; a summary for the
terminal, the whole table for a file."""
from __future__ import annotations

import math
from collections import Counter

from models.registry import natural_key

from ..core.stats import log_half_width
from .cells import MISSING, num
from .noise import band_text, machine_shift, verdict

HEADERS = ("case", "device", "base", "new", "change (%)", "noise band (%)", "verdict")
LARGEST = 5  # changes the terminal summary names, each way


def compare(base_run, new_run):
    """(caption, headers, rows, slower): `slower` lists (case, percent) of the cases judged slower."""
    base = {(c["device"], c["case"]): c for c in (*base_run.cases, *base_run.scaled)}
    new = {(c["device"], c["case"]): c for c in (*new_run.cases, *new_run.scaled)}
    noises = base_run.noise, new_run.noise
    shift, shift_error, shift_note = machine_shift(base_run, new_run)
    rows, slower = [], []
    for key in sorted(base.keys() | new.keys(), key=lambda k: natural_key(k[1])):
        device, case = key
        if key not in new:
            rows.append((case, device, num(base[key]["throughput"], ",.1f"), MISSING, MISSING, MISSING, "only in base"))
        elif key not in base:
            rows.append((case, device, MISSING, num(new[key]["throughput"], ",.1f"), MISSING, MISSING, "only in new"))
        elif not (base[key]["throughput"] and new[key]["throughput"]):
            rows.append((case, device, MISSING, MISSING, MISSING, MISSING, "no throughput"))
        else:
            change, band, word = verdict(base[key], new[key], *noises, shift, shift_error)
            rows.append((case, device, f"{base[key]['throughput']:,.1f}", f"{new[key]['throughput']:,.1f}",
                         f"{change * 100:+.1f}", band_text(band), word))
            if word == "slower":
                slower.append((case, -change * 100))
    sources = [n.source for n in noises]
    said = (f"both runs: {sources[0]}" if sources[0] == sources[1] else
            "; ".join(f"{r.name}: {s}" for r, s in zip((base_run, new_run), sources)))
    caption = (f"Throughput of {new_run.name} against {base_run.name} (samples/s; change in %; a verdict needs a "
               f"change, less the machine's own, outside the noise band, which allows for the noise between runs of "
               f"the same code ({said}); {shift_note})")
    return caption, HEADERS, rows, slower


RATIO_HEADERS = ("case", "against", "base", "new", "change (%)", "band (%)", "")


def compare_ratios(base_run, new_run):
    """(caption, headers, rows, agreed) of the paired ratios both runs measured (a case over the twin timed beside
    it): whether each run's ratio lies within the two runs' 95% intervals of the other's, root sum of squares in log
    terms. Between runs of the same code this is the A/A of ratios: about 95% should agree."""
    def by_key(run):
        return {(c["device"], c["case"], p["against"]): p for c in run.cases for p in c.get("paired") or []}
    base, new = by_key(base_run), by_key(new_run)
    rows, agreed = [], 0
    for key in sorted(base.keys() & new.keys(), key=lambda k: (natural_key(k[1]), k[2])):
        old, now = base[key], new[key]
        change, band = math.log(now["ratio"] / old["ratio"]), math.hypot(log_half_width(old), log_half_width(now))
        agrees = abs(change) <= band
        agreed += agrees
        rows.append((key[1], key[2], f"{old['ratio']:.3f}", f"{now['ratio']:.3f}", f"{math.expm1(change) * 100:+.1f}",
                     band_text(band), "agrees" if agrees else "moved"))
    caption = (f"Paired ratios of {new_run.name} against {base_run.name} (a case's throughput over its twin's, timed "
               "side by side; 'agrees' where the change is within the root sum of squares of the two 95% intervals, "
               f"which hold the drift between moments: {base_run.ratio_noise.source}; {new_run.ratio_noise.source})")
    return caption, RATIO_HEADERS, rows, agreed


def terminal_summary(base_run, new_run, rows, written: str, ratio_rows=(), agreed: int = 0) -> list[str]:
    """Counts of each verdict and the largest changes each way; the table itself is in the file."""
    words = Counter(row[-1] for row in rows)
    judged = [row for row in rows if row[-1] in ("slower", "faster")]
    lines = [f"{new_run.name} against {base_run.name}: {len(rows)} cases; "
             + ", ".join(f"{words[w]} {w}" for w in ("slower", "faster", "within noise"))
             + "".join(f", {n} {w}" for w, n in words.items() if w not in ("slower", "faster", "within noise"))]
    for word in ("slower", "faster"):
        found = sorted((row for row in judged if row[-1] == word), key=lambda row: abs(float(row[4])), reverse=True)
        if found:
            lines.append(f"largest {word}: " + ", ".join(f"{row[0]} {row[4]}% (band {row[5]})"
                                                         for row in found[:LARGEST]))
    if ratio_rows:
        moved = sorted((row for row in ratio_rows if row[-1] == "moved"), key=lambda row: -abs(float(row[4])))
        lines.append(f"paired ratios in both runs: {len(ratio_rows)}, {agreed} ({agreed / len(ratio_rows):.0%}) agree "
                     "within their 95% intervals" + ("; moved most: " + ", ".join(
                         f"{row[0]} {row[4]}% (band {row[5]})" for row in moved[:LARGEST]) if moved else ""))
    lines.append(f"wrote {written} (every case, its noise band and verdict"
                 + (", and the paired ratios)" if ratio_rows else ")"))
    return lines
