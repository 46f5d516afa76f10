"""The report's opening: what the runs found, computed from their cases, each figure with its noise band.

A pair is one case against the same case with one setting changed (XLA, precision), in the same run, so both carry
that run's noise between runs, or the same case on another backend, in another run; a gain is real where the verdict
of `bench.report.noise` says so (99%).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict

from ..core.records import MODES
from .cells import verdict_counts
from .noise import Pair, judged, verdict
from .runtimes import runtime_lines
from .select import (
    COST_EXAMPLES,
    REFERENCE,
    backend_pairs,
    cost_example_pairs,
    in_reference,
    other_backends,
    pairs,
)
from .serving import serving_lines


def backend_lines(runs) -> list[str]:
    lines = []
    for backend in other_backends(runs):
        found = backend_pairs(runs, backend)
        parts = []
        for setting in ("off", "on"):
            for mode in MODES:
                chosen = [pair for xla, pair in found if xla == setting and pair.new["mode"] == mode]
                if chosen:
                    parts.append(f"{MODES[mode]}, against TensorFlow with XLA {setting}: {effect(chosen)}")
        if parts:
            lines.append(f"**What {backend} buys over TensorFlow** (throughput ratio): " + "; ".join(parts) + ".")
    return lines


KNOWN_WITHIN = 0.05  # a ratio known this well answers a comparison of settings (bench.measure.timing.PAIR_TARGET)


def how_measured(found: list[Pair], runs=()) -> str:
    """How a finding's ratios were measured, and the change each could see: its 95% interval, typical over them, and
    where the between-run part of it came from."""
    parts = []
    drift = ", ".join(sorted({r.ratio_noise.brief for r in runs if r.ratio_noise})) or "the run's"
    for paired, how in ((True, "paired round by round"), (False, "unpaired, from two cases minutes apart")):
        chosen = [p for p in found if p.paired is paired and math.isfinite(p.half95)]
        if chosen:
            in_run = (f" (±{statistics.median(p.in_run95 for p in chosen) * 100:.0f}% from the pairs alone, the rest "
                      f"their drift between runs, {drift})" if paired else "")
            known = f", {sum(p.half95 <= KNOWN_WITHIN for p in chosen)} within ±{KNOWN_WITHIN:.0%}" if paired else ""
            parts.append(f"{how} in {len(chosen)}, ±{statistics.median(p.half95 for p in chosen) * 100:.0f}% "
                         f"typical{known}{in_run}")
    return "; ".join(parts)


def effect(pairs_of_a_mode: list[Pair], runs=()) -> str:
    ratios = sorted(p.ratio for p in pairs_of_a_mode)
    how = how_measured(pairs_of_a_mode, runs)
    return (f"median {statistics.median(ratios):.2f}x over {len(ratios)} cases ({ratios[0]:.2f}x to {ratios[-1]:.2f}x"
            f"{'; ' + how if how else ''}): {verdict_counts(pairs_of_a_mode)}")


def effect_lines(runs) -> list[str]:
    lines = []
    precisions = sorted({c["precision"] for r in runs for c in r.cases} - {"float32"})
    for title, found in [("XLA (on over off)", pairs(runs, "xla", False, True)),
                         *((f"{p} (over float32)", pairs(runs, "precision", "float32", p)) for p in precisions)]:
        by_mode = defaultdict(list)
        for pair in found:
            by_mode[pair.new["mode"]].append(pair)
        if by_mode:
            lines.append(f"**What {title} buys**: " + "; ".join(
                f"{MODES[mode]} {effect(by_mode[mode], runs)}" for mode in MODES if mode in by_mode) + ".")
    return lines


TIES_NAMED = 2  # a cell names this many models that tie with the fastest, and counts the others


def fastest_by_family(runs):
    """(headers, rows): in the reference setting, the fastest model of each family of two or more, per batch size;
    a runner-up within the noise band is named as a tie."""
    cases = [c for r in runs for c in r.cases if c.get("throughput")
             and in_reference(c)]
    noise = {r.name: r.noise for r in runs}
    families = defaultdict(list)
    for case in cases:
        families[(case["device"], case["family"])].append(case)
    examples = {name for pair in COST_EXAMPLES for name in pair}
    families = {key: members for key, members in families.items()
                if len({c["model"] for c in members}) > 1 and not {c["model"] for c in members} <= examples}
    batches = sorted({c["batch_size"] for members in families.values() for c in members})
    multi_device = len({device for device, _ in families}) > 1
    rows = []
    for (device, family), members in sorted(families.items()):
        cells = []
        for batch in batches:
            ranked = sorted((c for c in members if c["batch_size"] == batch), key=lambda c: -c["throughput"])
            if not ranked:
                cells.append("-")
                continue
            best = ranked[0]
            cell = f"{best['model']} ({best['throughput']:,.4g}/s)"
            ties = [c["model"] for c in ranked[1:] if c["run"] == best["run"]
                    and verdict(c, best, noise[c["run"]], noise[c["run"]])[2] == "within noise"]
            named = ", ".join(ties[:TIES_NAMED]) + (f" +{len(ties) - TIES_NAMED}" if len(ties) > TIES_NAMED else "")
            cells.append(cell + (f", ties with {named}" if ties else ""))
        rows.append((f"{family} ({device})" if multi_device else family, *cells))
    setting = f"{MODES[REFERENCE['mode']]}, {REFERENCE['precision']}, XLA off"
    return (f"The fastest model of each family ({setting}; samples/s; 'ties' are within the noise band)",
            ("family", *(f"bs {b}" for b in batches)), rows)


def cost_example_lines(runs) -> list[str]:
    """One finding for the source documents' cost example: each pair at its largest batch in the reference setting."""
    parts = []
    for run in runs:
        reference = [c for c in run.cases if in_reference(c) and c.get("latency_p50_ms")]
        largest = {}
        for big, small in cost_example_pairs(reference):
            if big["model"] not in largest or big["batch_size"] > largest[big["model"]][0]["batch_size"]:
                largest[big["model"]] = (big, small)
        for big, small in largest.values():
            pair = judged(big, small, run.noise, run.noise)  # paired: the harness times the second beside the first
            macs, time = big["macs_per_sample"] / small["macs_per_sample"], pair.ratio
            gist = ("the time falls about as much as the MACs" if time > macs / 1.5
                    else "the time falls far less than the MACs")
            how = (f"paired, the drift between runs {run.ratio_noise.brief}" if pair.paired and run.ratio_noise
                   else "paired" if pair.paired else "unpaired")
            parts.append(f"{big['model']} has {macs:.1f}x the MACs of {small['model']} and takes {time:.1f}x its time "
                         f"(±{pair.half95 * 100:.0f}%, {how}; bs {big['batch_size']}): {gist}")
    return [f"**The 1x1-bottleneck example** (inference, float32): {'; '.join(parts)}."] if parts else []


def efficiency_line(cases) -> str | None:
    known = [c for c in cases if c.get("mfu")]
    if len(known) < 2:
        return None
    best, worst = max(known, key=lambda c: c["mfu"]), min(known, key=lambda c: c["mfu"])
    return (f"**Against the measured ceiling**: closest {best['case']} at {best['mfu']:.0%} MFU, farthest "
            f"{worst['case']} at {worst['mfu']:.1%} (the roofline plot shows why).")


def scaling_lines(runs) -> list[str]:
    """Scaling efficiency per mode and replica count, over the scaled cases with a baseline in their run."""
    groups = defaultdict(list)
    for run in runs:
        for case in run.scaled:
            if case.get("scaling"):
                where = "workers" if (case.get("workers") or 1) > 1 else "replicas"
                cpu = str(case.get("device", "")).startswith("CPU")
                groups[(case["mode"], case.get("replicas") or 1, where, cpu)].append(case["scaling"]["efficiency"])
    lines = []
    for (mode, replicas, where, cpu), found in sorted(groups.items()):
        found.sort()
        shared = "; on a CPU they share its cores" if cpu else ""
        lines.append(f"**Scaling, {MODES[mode]} on {replicas} {where}**: efficiency median "
                     f"{statistics.median(found):.2f} over {len(found)} cases ({found[0]:.2f} to {found[-1]:.2f}; "
                     f"1.00 is linear{shared}).")
    return lines


def left_out_lines(runs) -> list[str]:
    """What each run's time budget left out, tier by tier in its priority, with the budget that admits it."""
    lines = []
    for r in runs:
        tiers = [(index, tier) for index, tier in enumerate((r.plan or {}).get("priority") or [], 1)
                 if tier["outside"]]
        if tiers:
            lines.append(f"**Left out by the time budget** ({r.name}), in its priority: "
                         + "; ".join(f"{index} {tier['tier']}, {tier['outside']} of {tier['cases']} "
                                     f"(`--time-budget {tier['admits_all_minutes']}` admits all up to it)"
                                     for index, tier in tiers) + ".")
    return lines


def missing_exports_text(run) -> str:
    """The runtime cases a run's budget left out whose export was not yet made, and how to make them ahead."""
    missing = (run.plan or {}).get("missing_exports")
    if not missing or not missing.get("cases"):
        return ""
    return (f" Of those outside the budget, {missing['cases']} runtime cases ({run.name}) had no export yet: "
            f"`python -m bench.export --precision {','.join(missing['precisions'])}` makes every export of the zoo "
            f"ahead (theirs in about {max(1, round(missing['minutes']))} min), and the next run finds them cached.")


def findings(runs, merged_note: str | None = None) -> tuple[list[str], tuple]:
    """(lines, the family table) for the report's opening; `merged_note` says which runs were merged and why."""
    cases = [c for r in runs for c in r.cases]
    lines = ([f"**Runs**: {merged_note}."] if merged_note else []) + effect_lines(runs) + runtime_lines(runs)
    lines += serving_lines(runs)
    lines += backend_lines(runs)
    lines += cost_example_lines(runs) + scaling_lines(runs)
    mfu = efficiency_line(cases)
    if mfu:
        lines.append(mfu)
    lines += left_out_lines(runs)
    reasons = Counter(skip.get("reason", "-") for r in runs for skip in r.skipped)
    if reasons:
        lines.append(f"**Not measured**: {sum(reasons.values())} cases, "
                     + "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                     + " (the last table counts them by reason; report.html lists each)."
                     + "".join(missing_exports_text(r) for r in runs))
    for r in runs:
        if r.time_s and r.time_s.get("total"):
            lines.append(f"**{r.name}** took {r.time_s['total'] / 60:.1f} min, "
                         f"{r.time_s.get('timed', 0) / r.time_s['total']:.0%} of it in timed rounds.")
    return lines, fastest_by_family(runs)
