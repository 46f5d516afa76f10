"""Where a model will run: each deployment runtime's inference against TensorFlow's own (the Keras case in float32
with XLA off, timed round by round beside it), the fastest runtime per model at batch 1, and each export's time,
size and fidelity."""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from models.registry import natural_key

from ..core.records import MIB
from .cells import ratio_cell, verdict_counts
from .noise import PAIRED_INTERVAL, Pair, judged
from .select import KERAS, runtime_of, twins

TENSORFLOW = {"runtime": KERAS, "precision": "float32", "xla": False}
ASTRAY = 0.5  # a max relative error this large: the export computes something else (int8 of a deep random model)


def runtime_pairs(runs) -> list[Pair]:
    """Every deployment runtime's case against the Keras float32, XLA-off case of the same model and batch size in
    the same run (the ratio paired round by round where the harness timed them side by side)."""
    found = []
    for run in runs:
        measured = [case for case in run.cases if case.get("throughput")]
        for runtime in sorted({runtime_of(c) for c in measured} - {KERAS}):
            found.extend(judged(base, new, run.noise, run.noise)
                         for base, new in twins(measured, {"runtime": runtime}, TENSORFLOW))
    return sorted(found, key=lambda p: (natural_key(p.new["model"]), p.new["batch_size"], runtime_of(p.new),
                                        p.new["precision"]))


def _precision(case) -> str:
    """What was asked, and what the runtime ran where it chose otherwise (OpenVINO's bf16 on a CPU with it)."""
    executed = case.get("executed_precision")
    return case["precision"] if executed in (None, case["precision"]) else f"{case['precision']} (ran {executed})"


def _ms(case) -> str:
    error = case.get("median_error")
    return f"{case['latency_p50_ms']:.3g}" + (f" ±{error * 100:.0f}%" if error is not None else "")


def runtime_table(view):
    rows = [(view.label(p.new), p.new["batch_size"], p.new["runtime_label"], _precision(p.new), _ms(p.base),
             _ms(p.new), ratio_cell(p), p.word) for p in runtime_pairs(view.runs)]
    return ("What each runtime buys over TensorFlow: median latency per step (ms, ± its 95% interval) of the model "
            "exported by Keras and served by the runtime, against TensorFlow's own step (float32, XLA off); the ratio "
            f"is throughput over TensorFlow's, ± its 95% interval, {PAIRED_INTERVAL} (†: unpaired); the verdict is at "
            "99%",
            ("model", "batch", "runtime", "precision", "TensorFlow (ms)", "runtime (ms)", "over TensorFlow",
             "verdict"), rows)


def fastest(view):
    """Per model at batch 1, inference: the fastest deployment runtime and precision (TensorFlow's own float32 step
    where every one is slower), with the runner-up; the lead is clear when the two ratios' 99% intervals over the
    same TensorFlow case do not overlap."""
    by_model = defaultdict(list)
    for pair in runtime_pairs(view.runs):
        if pair.new["batch_size"] == 1 and not astray(pair.new):
            by_model[view.label(pair.new)].append(pair)
    rows = []
    for label in sorted(by_model, key=natural_key):
        tensorflow = by_model[label][0].base
        contenders = sorted(by_model[label], key=lambda p: -p.ratio)
        best = contenders[0]
        if best.high < 1:
            rows.append((label, f"TensorFlow ({_ms(tensorflow)} ms)", "every runtime is slower", "-"))
            continue
        runner = contenders[1] if len(contenders) > 1 else None
        lead = ("-" if runner is None else
                f"clear over {_name(runner.new)} ({runner.ratio:.2f}x)" if best.low > runner.high else
                f"within noise of {_name(runner.new)} ({runner.ratio:.2f}x)")
        rows.append((label, f"{_name(best.new)} ({_ms(best.new)} ms)", ratio_cell(best), lead))
    return ("The fastest runtime per model at batch 1 (inference): its median latency and its throughput over "
            "TensorFlow's (float32, XLA off), and whether it leads the runner-up beyond the noise (99%); exports whose "
            f"output is far from Keras's (max relative error {ASTRAY:g} or more) do not compete",
            ("model", "fastest", "over TensorFlow", "lead"), rows)


def astray(case) -> bool:
    return ((case.get("fidelity") or {}).get("max_relative_error") or 0) >= ASTRAY


def _name(case) -> str:
    return f"{case['runtime_label']} {case['precision']}"


def exports(view):
    """One row per export (model, runtime, precision): its first case's record of it."""
    seen, rows = set(), []
    cases = sorted((c for c in view.cases if runtime_of(c) != KERAS and c.get("export")),
                   key=lambda c: (natural_key(c["model"]), runtime_of(c), c["precision"]))
    for c in cases:
        key = (view.label(c), runtime_of(c), c["precision"])
        if key in seen:
            continue
        seen.add(key)
        made = c["export"]
        fidelity = (c.get("fidelity") or {}).get("max_relative_error")
        rows.append((view.label(c), c["runtime_label"], _precision(c),
                     f"{made['seconds']:.1f}" + (" (cached)" if made.get("cached") else ""),
                     f"{made['size_bytes'] / MIB:,.1f}", "-" if fidelity is None else f"{fidelity:.1e}",
                     c.get("threads") or "-"))
    return ("Exports (Keras's model.export) and fidelity: seconds to export (cached: made by an earlier run, which "
            "took that long), size on disk (MiB), and the largest difference of the runtime's output from Keras "
            "float32's on the same input, relative to the output's largest magnitude. The weights are random: this is "
            "numerical agreement with Keras, not accuracy; int8 shows its cost here",
            ("model", "runtime", "precision", "export (s)", "size (MiB)", "max relative error", "threads"), rows)


def runtime_lines(runs) -> list[str]:
    """The finding: per runtime and precision, the median ratio over TensorFlow and its verdicts; and which runtime
    is fastest at batch 1 how often."""
    groups = defaultdict(list)
    for pair in runtime_pairs(runs):
        groups[(pair.new["runtime_label"], pair.new["precision"])].append(pair)
    if not groups:
        return []
    parts = []
    for (label, precision), found in sorted(groups.items()):
        paired = [p.half95 for p in found if p.paired]
        how = f"; paired in {len(paired)}, ±{statistics.median(paired) * 100:.0f}% typical" if paired else ""
        parts.append(f"{label} {precision} median {statistics.median(p.ratio for p in found):.2f}x over "
                     f"{len(found)} cases ({verdict_counts(found)}{how})")
    drift = ", ".join(sorted({r.ratio_noise.brief for r in runs if r.ratio_noise})) or "none"
    wins = Counter()
    for pairs_of_model in _batch1_by_model(runs).values():
        best = max((p for p in pairs_of_model if not astray(p.new)), key=lambda p: p.ratio, default=None)
        if best is None:
            continue
        wins["TensorFlow" if best.high < 1 else _name(best.new)] += 1
    fastest_text = ", ".join(f"{name} for {n}" for name, n in wins.most_common()) or "none"
    lines = [f"**What each runtime buys over TensorFlow** (inference throughput over TensorFlow's float32 step, XLA "
             f"off): {'; '.join(parts)}. Fastest at batch 1: {fastest_text} (the runtime tables say by how much). "
             f"The drift between runs in the intervals: {drift}."]
    far = sorted({f"{c['model']} on {_name(c)}" for r in runs for c in r.cases if astray(c)}, key=natural_key)
    if far:
        lines.append(f"**Exports whose output is far from Keras's** (max relative error {ASTRAY:g} or more, so their "
                     f"speed is not that of the same model, and they are not counted fastest): {', '.join(far)}. An "
                     "error of exactly 1.0 is an output of zeros: int8 softmax scores of 1,000 near-equal classes "
                     "fall under the int8 step.")
    return lines


def _batch1_by_model(runs) -> dict:
    found = defaultdict(list)
    for pair in runtime_pairs(runs):
        if pair.new["batch_size"] == 1:
            found[(pair.new["device"], pair.new["model"])].append(pair)
    return found


def tables(view) -> list[tuple]:
    return [runtime_table(view), fastest(view), exports(view)]
