"""The report's tables, each (caption, headers, rows) of text, formatted from what bench.report.select chose."""
from __future__ import annotations

import statistics
from collections import defaultdict

from models.registry import natural_key, shape_text

from ..core.records import MIB, PHASES
from ..core.stats import PERCENTILE_MIN_SAMPLES
from . import grids, runtimes, select, serving
from .cells import MISSING, mfu, num, pm, ratio_cell, si
from .noise import PAIRED_INTERVAL, band_text, judged
from .runs import backend_of
from .select import KERAS, runtime_of

TIME_LABELS = {"timed": "timed rounds", "first_call": "first calls", "build": "building", "pilot": "pilots",
               "export": "exports", "trace": "traces", "probes": "probes",
               "workers": "worker processes", "other": "other"}
GIB = 2 ** 30
P90_MIN, P99_MIN = PERCENTILE_MIN_SAMPLES["p90"], PERCENTILE_MIN_SAMPLES["p99"]
PASSES_NOTE = ("; a case timed in several passes has the geometric mean of its passes' medians, known within the "
               "spread between passes pooled over the run's cases, which is the noise between runs")
OP_NAME_WIDTH, OP_TYPE_WIDTH = 40, 26  # XLA clusters and fused ops have names of 100 characters and more


def _overhead(info) -> str:
    """Step time added by the harness, from the median paired ratio of harness and bare calls."""
    if not info or not info.get("throughput_ratio"):
        return MISSING
    return f"{(1 / info['throughput_ratio'] - 1) * 100:+.1f}% ({info.get('overhead_pairs', '?')} pairs)"


def completeness(run) -> str:
    cut = run.incomplete
    if not cut:
        return "yes"
    return f"incomplete: {cut['finished']} of {cut['planned']} cases ({cut['reason']})"


def _backend(machine) -> str:
    """'tensorflow 2.21.0', 'jax 0.10.2'."""
    name = backend_of(machine)
    version = machine.get(f"{name}_version")
    return f"{name} {version}" if version else name


def _ratio(new, base) -> str:
    return f"{new / base:.2f}x" if new and base else MISSING


def _on_off(xla) -> str:
    return "on" if xla else "off"


def _short(text: str, width: int = OP_NAME_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def machine(view):
    """A column per run, a row per fact: a run's facts side by side stay within the page's width."""
    def ceiling(precision):
        def of_run(r):
            value = (r.machine.get("peak_flops_per_s") or {}).get(precision)
            probe = (r.machine.get("peak_probe") or {}).get(precision)
            return MISSING if value is None else f"{value / 1e12:.3g}" + (f" ({probe})" if probe else "")
        return of_run

    def commit(r):
        found = r.commit.get("id") or MISSING
        return found[:10] if len(found) == 40 else found

    facts = [
        ("date (UTC)", lambda r: (r.datetime or MISSING)[:19]), ("commit", commit),
        ("device", lambda r: r.machine.get("device", MISSING)), ("backend", lambda r: _backend(r.machine)),
        ("Keras", lambda r: r.machine.get("keras_version", MISSING)),
        ("cores", lambda r: str(r.machine.get("cpu_cores_logical", MISSING))),
        ("memory (GiB)", lambda r: num(r.machine.get("memory_bytes") and r.machine["memory_bytes"] / GIB, ".1f")),
        *((f"ceiling, {p} (TFLOP/s)", ceiling(p)) for p in dict.fromkeys(
            p for r in view.runs for p in r.machine.get("peak_flops_per_s") or {})),
        ("bandwidth (GB/s)", lambda r: num(r.machine.get("peak_bandwidth_bytes_per_s")
                                           and r.machine["peak_bandwidth_bytes_per_s"] / 1e9, ".1f")),
        ("harness overhead", lambda r: _overhead(r.overhead)), ("cases", lambda r: str(len(r.cases))),
        ("skipped", lambda r: str(len(r.skipped))), ("complete", completeness),
    ]
    return ("Machine and run: the device, versions, the ceiling (best TFLOP/s of the peak probes per precision, "
            "and the probe that reached it), bandwidth (GB/s, read + write) and what the harness adds to a step "
            "(interleaved with bare calls)",
            ("run", *(r.name for r in view.runs)), [(fact, *(value(r) for r in view.runs)) for fact, value in facts])


ESTIMATE_TOLERANCE = 0.30  # the plan's goal: a case's estimate within ±30% of what it took, for 80% of cases


def estimates_held(run) -> dict | None:
    """How the plan's estimate of each case's seconds held against what the case took (measured over planned)."""
    ratios = sorted(c["estimate_s"]["measured"] / c["estimate_s"]["planned"] for c in run.cases
                    if c.get("estimate_s") and c["estimate_s"].get("planned"))
    if not ratios:
        return None
    within = sum(1 for r in ratios if abs(r - 1) <= ESTIMATE_TOLERANCE)
    return {"cases": len(ratios), "within": within, "median": statistics.median(ratios),
            "p10": ratios[int(0.1 * (len(ratios) - 1))], "p90": ratios[int(0.9 * (len(ratios) - 1))]}


def estimates(view):
    rows = []
    for r in view.runs:
        held = estimates_held(r)
        if held:
            rows.append((r.name, held["cases"], f"{held['within']} ({held['within'] / held['cases']:.0%})",
                         f"{held['median']:.2f}x", f"{held['p10']:.2f}x to {held['p90']:.2f}x"))
    return (f"How the time budget's estimates held: each case's planned seconds (as corrected when it was admitted) "
            f"against what it took; the goal is ±{ESTIMATE_TOLERANCE:.0%} for 80% of cases",
            ("run", "cases", f"within ±{ESTIMATE_TOLERANCE:.0%}", "median measured / planned", "10th to 90th"), rows)


def precision_of_medians(view):
    rows = []
    for r in view.runs:
        found = select.median_precision(r)
        targets = found["targets"]
        target = "-".join(dict.fromkeys(f"{t * 100:.0f}" for t in (targets[0], targets[-1]))) if targets else MISSING
        rows.append((r.name, found["cases"], target,
                     found["reached"], *(pm(found[k]) if found[k] is not None else MISSING
                                         for k in ("median", "p90", "widest")), found["unknown"]))
    return (f"How precise the medians are: each case's 95% interval of its median step time, relative to it"
            f"{PASSES_NOTE}",
            ("run", "cases", "target (±%)", "reached it", "median case", "90th percentile case", "widest",
             "unknown (1 round)"), rows)


def precisions(view):
    rows = []
    for r in view.runs:
        fast = r.machine.get("fast_precisions") or []
        measured = {c["precision"] for c in r.cases}
        for precision, ratio in (r.machine.get("precision_speedup") or {}).items():
            rows.append((r.name, precision, f"{ratio:.2f}x",
                         "yes" if precision in fast else f"no (under {r.machine.get('fast_margin')}x)",
                         "yes" if precision in measured else "no"))
    return ("Precisions: each one's ceiling over float32's on the same probes; a run measures those the device "
            "runs fast, and any named in --precision", ("run", "precision", "ceiling over float32", "fast",
                                                        "measured"), rows)


def time_spent(view):
    """A row per run and phase: the phases side by side made a table of 1,600 px."""
    rows = []
    for r in view.runs:
        spent = r.time_s
        if not spent or not spent.get("total"):
            continue
        plan = r.plan or {}
        budget = (f"{plan['budget_minutes']:g} min; {plan['outside_budget']} cases outside it; measured "
                  f"{_ratio(plan.get('measured_over_estimated'), 1)} the estimates" if plan else "none")
        rows.append((r.name, "total", f"{spent['total'] / 60:.1f} min", "100%", budget))
        rows.extend((r.name, TIME_LABELS[phase], f"{spent.get(phase, 0):.0f} s",
                     f"{spent.get(phase, 0) / spent['total']:.0%}", "") for phase in (*PHASES, "other"))
    return ("Where the run's time went: timed rounds (the figures), first calls (tracing, graph optimisation, XLA "
            "compiles), building models, pilot rounds, traces, ceiling and speed probes, and the rest (start-up, "
            "collection, freeing models)", ("run", "phase", "time", "share", "time budget"), rows)


def priority(view):
    """A row per run and tier of the plan's priority: what the budget measured, and the budget that admits it all."""
    rows = [(r.name, index, tier["tier"], tier["cases"] - tier["outside"], tier["cases"],
             f"--time-budget {tier['admits_all_minutes']}" if tier["outside"] else "")
            for r in view.runs for index, tier in enumerate((r.plan or {}).get("priority") or [], 1)]
    return ("The time budget's priority: every model's cases of a tier before any of the next, what the run measured "
            "of each, and where some were left out the budget (minutes, as the run's estimates stood at its end) "
            "that would admit that tier and every one before it", ("run", "tier", "cases", "admitted", "of",
                                                                    "to admit all up to here"), rows)


def cost(view):
    rows = [(c["model"], shape_text(c["input_shape"] or []) or MISSING, num(c["params"], ","),
             num(c["trainable_params"], ","), si(c["macs_per_sample"]), si(c["flops_per_sample"]),
             num(c["activation_bytes_per_sample"] and c["activation_bytes_per_sample"] / MIB, ".2f"),
             num(c["depth"], "d"))
            for c in select.one_per_model(view.cases)]
    return ("Model cost per sample: parameters, MACs (multiply-accumulates), FLOPs (forward, all ops), "
            "activation memory (MiB) and depth (weighted layers on the longest path)",
            ("model", "input", "params", "trainable", "MACs", "FLOPs", "activations (MiB)", "depth"), rows)


def _grid(view, cases, cell):
    """Rows of models, columns of batch sizes."""
    batches = sorted({c["batch_size"] for c in cases})
    by_key = {(view.label(c), c["batch_size"]): c for c in cases}
    rows = [(label, *(cell(by_key[(label, b)]) if (label, b) in by_key else MISSING for b in batches))
            for label in view.labels(cases)]
    return ("model", *(f"bs {b}" for b in batches)), rows


def _throughput(c) -> str:
    return f"{num(c['throughput'], ',.1f')} {pm(c['median_error'])} n={num(c['rounds'], 'd')}"


def speed(view):
    tables = []
    for mode, runtime, precision, xla in select.settings(view.cases):
        cases = [c for c in view.cases
                 if (c["mode"], runtime_of(c), c["precision"], c["xla"]) == (mode, runtime, precision, xla)]
        setting = (f"{mode}, {precision}, XLA {_on_off(xla)}" if runtime == KERAS
                   else f"{mode}, {cases[0]['runtime_label']}, {precision}")
        tables.append((f"Throughput (samples/s, from the median of n timed steps, ± its 95% interval{PASSES_NOTE}) by "
                       f"batch size: {setting}", *_grid(view, cases, _throughput)))
        tables.append((f"Latency per step (ms, p50 / p90 / p99, n timed steps; a tail percentile is '-' below "
                       f"{P90_MIN} steps for p90 and {P99_MIN} for p99, --latency-samples measures them) by "
                       f"batch size: {setting}",
                       *_grid(view, cases, lambda c: " / ".join(num(c[f"latency_{p}_ms"], ".2f")
                                                                for p in ("p50", "p90", "p99"))
                              + f" (n={num(c['rounds'], 'd')})")))
    return tables


RATIO_NOTE = f"; ± its 95% interval: {PAIRED_INTERVAL}, or, marked †, unpaired, from the two cases' own figures"


def _ratio_table(view, caption, vary, base_value, new_value):
    """Throughput of `new_value` over `base_value` of one setting, the other settings held, pairs within a run."""
    rows = defaultdict(dict)
    for pair in select.pairs(view.runs, vary, base_value, new_value):
        held = ", ".join(f"{k} {_on_off(pair.new[k]) if k == 'xla' else pair.new[k]}"
                         for k in ("mode", "precision", "xla") if k != vary
                         and not (k == "xla" and runtime_of(pair.new) != KERAS))
        if runtime_of(pair.new) != KERAS:
            held = f"{pair.new['runtime_label']}, {held}"
        rows[(view.label(pair.new), held)][pair.new["batch_size"]] = ratio_cell(pair)
    batches = sorted({b for cells in rows.values() for b in cells})
    body = [(label, held, *(cells.get(b, MISSING) for b in batches))
            for (label, held), cells in sorted(rows.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1]))]
    return caption, ("model", "setting", *(f"bs {b}" for b in batches)), body


def xla(view):
    return _ratio_table(view, f"What XLA buys: throughput with XLA over without (above 1.00x: XLA is faster)"
                        f"{RATIO_NOTE}", "xla", False, True)


def precision(view):
    return [_ratio_table(view, f"What {p} buys: throughput over float32 (above 1.00x: faster){RATIO_NOTE}",
                         "precision", "float32", p)
            for p in sorted({c["precision"] for c in view.cases} - {"float32"})]


def efficiency(view):
    rows = []
    for c, top, skipped in select.largest_batches(view):
        why = "; ".join(f"bs {batch} {reason}" for batch, reason in skipped) or "not in the run"
        batch = str(c["batch_size"]) if c["batch_size"] >= top else f"{c['batch_size']} (not {top}: {why})"
        memory = num(c["peak_memory_bytes"] and c["peak_memory_bytes"] / MIB, ",.1f")
        where = c["precision"] if runtime_of(c) == KERAS else f"{c['runtime_label']}, {c['precision']}"
        rows.append((view.label(c), c["mode"], where, _on_off(c["xla"]) if runtime_of(c) == KERAS else MISSING,
                     batch,
                     num(c["achieved_tflops"], ".3f"), mfu(c["mfu"]), num(c["compile_s"], ".2f"),
                     memory + (f" ({c['peak_memory_note']})" if c.get("peak_memory_note") else "")))
    return ("Efficiency at each setting's largest batch (the batch column says when a model's is smaller, and "
            "why): achieved TFLOP/s, MFU (% of the measured ceiling), first-call time (trace + compile, s) and "
            "peak allocator memory (MiB)",
            ("model", "mode", "precision", "XLA", "batch", "TFLOP/s", "MFU (%)", "compile (s)",
             "peak memory (MiB)"), rows)


def cost_example(view):
    noise = {run.name: run.noise for run in view.runs}
    found = sorted(select.cost_example_pairs(view.cases),
                   key=lambda pair: natural_key(tuple(str(pair[0].get(f)) for f in select.SETTING_FIELDS)))
    rows = [(f"{big['model']} / {small['model']}",
             f"{big['device']}, {big['backend']}" if view.multi_backend else big["device"], big["mode"],
             big["precision"], _on_off(big["xla"]), big["batch_size"],
             _ratio(big["macs_per_sample"], small["macs_per_sample"]),
             ratio_cell(judged(big, small, noise[big["run"]], noise[big["run"]])))
            for big, small in found]
    return ("The cost example of the source documents: how many times the MACs and the measured median "
            f"latency of the module without 1x1 reductions exceed those of the one with them{RATIO_NOTE}",
            ("pair", "device", "mode", "precision", "XLA", "batch", "MACs ratio", "latency ratio"), rows)


def top_ops(view, per_model: int = 5):
    rows = [(model, c["case"].removeprefix(f"{c['model']}-"), _short(op["name"]), _short(op["type"], OP_TYPE_WIDTH),
             f"{op['self_time_us']:,.0f}", f"{op['share'] * 100:.1f}")
            for model, c in select.traced(view) for op in c["top_ops"][:per_model]]
    return (f"Where the time goes: the {per_model} operations with the most self time per step, from each "
            f"model's trace (the largest traced batch; names over {OP_NAME_WIDTH} characters shortened, the trace "
            "has them whole)", ("model", "case", "operation", "type", "self (us/step)", "share (%)"), rows)


def backends(view):
    tables = []
    for backend in select.other_backends(view.runs):
        found = sorted(select.backend_pairs(view.runs, backend), key=lambda item: (
            natural_key(item[1].new["model"]), item[1].new["mode"], item[1].new["precision"],
            item[1].new["batch_size"], item[0]))
        rows = [(f"{pair.new['model']} ({pair.new['device']})" if view.multi_device else pair.new["model"],
                 pair.new["mode"], pair.new["precision"], pair.new["batch_size"], xla,
                 f"{num(pair.base['throughput'], ',.1f')} {pm(pair.base['median_error'])}",
                 f"{num(pair.new['throughput'], ',.1f')} {pm(pair.new['median_error'])}",
                 f"{pair.ratio:.2f}x", band_text(pair.band), pair.word) for xla, pair in found]
        tables.append((f"What {backend} buys over TensorFlow: throughput (samples/s, ± the 95% interval of the "
                       f"median) of the same case on both, against TensorFlow with XLA as {backend} ran it and with "
                       "XLA off (its default); a verdict needs the ratio outside the noise band (%, 99%) of the two "
                       "runs", ("model", "mode", "precision", "batch", "TensorFlow XLA", "TensorFlow", backend,
                                f"{backend} / TensorFlow", "noise band (%)", "verdict"), rows))
    return tables


def _scaling_row(view, case, speedup, efficiency_text):
    return (view.label(case), case["mode"], case["precision"], case["batch_size"], case.get("replicas") or 1,
            case.get("workers") or 1, case.get("global_batch") or case["batch_size"], _throughput(case),
            speedup, efficiency_text, case.get("all_reduce") or MISSING)


def scaling(view):
    """Each scaled case under its one-replica baseline of the same run."""
    rows = []
    for run in view.runs:
        for case, base in select.scaled_with_baselines(run):
            if base is not None:
                rows.append(_scaling_row(view, base, "1.00x", "1.00"))
            result = case.get("scaling") or {}
            speedup = num(result.get("speedup"), ".2f") + ("x" if result.get("speedup") else "")
            error = f" ±{result['error']:.2f}" if result.get("error") is not None else ""
            rows.append(_scaling_row(view, case, speedup, f"{result['efficiency']:.2f}{error}" if result
                                     else "no one-replica case in the run"))
    return ("Scaling: global throughput on N replicas (this host's devices) or workers (tf.distribute hosts), "
            "each under its one-replica case of the same run; efficiency = throughput at N over N times the "
            "throughput at 1, ± its 95% interval. On a CPU the replicas share the cores, and a cluster's "
            "one-worker case ran on every worker at once (README: Scaling out)",
            ("model", "mode", "precision", "batch / replica", "replicas", "workers", "global batch",
             "throughput (samples/s)", "speed-up", "efficiency", "all-reduce"), rows)


def skipped(view):
    rows = [(run.name, skip.get("case", MISSING),
             ("failed: " if skip.get("failed") else "") + skip.get("reason", MISSING))
            for run in view.runs for skip in run.skipped]
    return ("Skipped cases and why (options in the reason measure them; a case that failed says so)",
            ("run", "case", "reason"), rows)


def tables(runs) -> tuple[list[tuple], list[tuple]]:
    """(the tables a person reads, one row per model and a column per setting; every case's own rows, which
    report.html shows folded), each with rows, in the report's order."""
    view = select.View(runs)
    main = [machine(view), precisions(view), time_spent(view), priority(view), precision_of_medians(view),
            estimates(view), grids.cost(view), *grids.throughput(view), *grids.settings(view), grids.deployment(view),
            *serving.tables(view), *backends(view), scaling(view), cost_example(view), grids.where_time_goes(view),
            grids.skipped(view)]
    detail = [cost(view), *speed(view), xla(view), *precision(view), *runtimes.tables(view), efficiency(view),
              top_ops(view), skipped(view)]
    return [table for table in main if table[2]], [table for table in detail if table[2]]
