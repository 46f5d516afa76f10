"""Two runs case by case: the change of each case's throughput, its noise band and the verdict; a summary for the
terminal, the whole table for a file."""
from __future__ import annotations

from collections import Counter

from models.registry import natural_key

from .noise import band_text, machine_shift, verdict
from .tables import MISSING, num

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
    sources = [f"{n.source}" + (f", sigma {n.sigma * 100:.1f}%" if n.sigma is not None else "") for n in noises]
    said = (f"both runs: {sources[0]}" if sources[0] == sources[1] else
            "; ".join(f"{r.name}: {s}" for r, s in zip((base_run, new_run), sources)))
    caption = (f"Throughput of {new_run.name} against {base_run.name} (samples/s; change in %; a verdict needs a "
               f"change, less the machine's own, outside the noise band, which allows for the noise between runs of "
               f"the same code ({said}); {shift_note})")
    return caption, HEADERS, rows, slower


def terminal_summary(base_run, new_run, rows, written: str) -> list[str]:
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
    lines.append(f"wrote {written} (every case, its noise band and verdict)")
    return lines
