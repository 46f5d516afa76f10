"""The report's tables a person reads: one row per model and a column per setting (batch size, XLA, precision,
runtime), each cell a figure with its ± (95%) and, for a ratio, its verdict. Every case's own row is in report.csv
and, folded, in report.html (bench.report.tables)."""
from __future__ import annotations

from collections import Counter

from models.registry import natural_key

from ..core.records import MODES
from . import runtimes, select
from .cells import MARKS_NOTE, MISSING, mfu, pm, ratio_cell, si
from .select import KERAS, runtime_of

SHORT_PRECISIONS = {"float32": "f32", "mixed_bfloat16": "bf16", "mixed_float16": "f16", "int8": "int8"}
TOP_OPS = 3


def setting_key(case) -> tuple:
    """Columns in the report's order: inference first, the Keras backend, float32, XLA off, small batches."""
    return (case["mode"] != "infer", runtime_of(case) != KERAS, runtime_of(case), case["precision"] != "float32",
            case["precision"], case["xla"], case["batch_size"])


def setting_label(case, fields) -> str:
    """'infer f32 XLA bs1', 'LiteRT int8 bs1': the fields of the case that name its column."""
    parts = []
    for field in fields:
        if field == "mode":
            parts.append(case["mode"])
        elif field == "runtime" and runtime_of(case) != KERAS:
            parts.append(case["runtime_label"])
        elif field == "precision":
            parts.append(SHORT_PRECISIONS.get(case["precision"], case["precision"]))
        elif field == "xla" and case["xla"] and runtime_of(case) == KERAS:
            parts.append("XLA")
        elif field == "batch_size":
            parts.append(f"bs{case['batch_size']}")
    return " ".join(parts)


def grid(view, entries, extra=None):
    """(headers, rows): a row per model, a column per setting; `entries` are (case, column group, column, cell
    text), the columns ordered by group and setting, and `extra` (label -> text) a last column."""
    columns, cells, groups = {}, {}, {}
    for case, group, column, text in entries:
        column = f"{group}{column}"
        columns.setdefault(column, (groups.setdefault(group, len(groups)), setting_key(case)))
        cells[(view.label(case), column)] = text
    ordered = sorted(columns, key=lambda c: columns[c])
    labels = sorted({label for label, _ in cells}, key=natural_key)
    rows = [(label, *(cells.get((label, c), MISSING) for c in ordered), *((extra.get(label, MISSING),) if extra
                                                                          else ())) for label in labels]
    return ("model", *ordered, *(("fastest at bs 1",) if extra else ())), rows


def throughput(view) -> list[tuple]:
    """A table per mode: each model's throughput by precision, XLA and batch size."""
    tables = []
    for mode in sorted({c["mode"] for c in view.cases}, key=lambda m: m != "infer"):
        entries = [(c, "", setting_label(c, ("precision", "xla", "batch_size")),
                    f"{c['throughput']:,.1f} {pm(c['median_error'], 0)}")
                   for c in view.cases if runtime_of(c) == KERAS and c.get("throughput") and c["mode"] == mode]
        tables.append((f"Throughput, {MODES[mode]} (samples/s, the median of the timed steps, ± its 95% interval) of "
                       "each model, by precision, XLA and batch size; latency percentiles and step counts are in "
                       "report.csv", *grid(view, entries)))
    return tables


def settings(view) -> list[tuple]:
    """A table per mode: what XLA and each mixed precision buy, each ratio in its own column."""
    tables = []
    for mode in sorted({c["mode"] for c in view.cases}, key=lambda m: m != "infer"):
        entries = [(p.new, "XLA: ", setting_label(p.new, ("batch_size",)), ratio_cell(p, marked=True))
                   for p in select.pairs(view.runs, "xla", False, True)
                   if p.new["precision"] == "float32" and p.new["mode"] == mode]
        for precision in sorted({c["precision"] for c in view.cases} - {"float32"}):
            entries += [(p.new, f"{SHORT_PRECISIONS.get(precision, precision)}: ",
                         setting_label(p.new, ("xla", "batch_size")), ratio_cell(p, marked=True))
                        for p in select.pairs(view.runs, "precision", "float32", precision) if p.new["mode"] == mode]
        tables.append((f"What XLA and each precision buy, {MODES[mode]}: throughput with it over without (XLA off, "
                       "float32), the other settings held, ± its 95% interval (the pairs' and the drift between "
                       f"runs); {MARKS_NOTE}", *grid(view, entries)))
    return tables


def deployment(view):
    """Each runtime's throughput over TensorFlow's, and the fastest at batch 1."""
    pairs = runtimes.runtime_pairs(view.runs)
    fastest = {row[0]: row[1] for row in runtimes.fastest(view)[2]}
    return ("What each runtime buys over TensorFlow: throughput of the model exported by Keras and served by the "
            f"runtime over TensorFlow's own step (float32, XLA off), ± its 95% interval; {MARKS_NOTE}",
            *grid(view, [(p.new, "", setting_label(p.new, ("runtime", "precision", "batch_size")),
                          ratio_cell(p, marked=True)) for p in pairs], fastest))


def cost(view):
    """Each model's cost per sample and how close its largest batches came to the ceiling."""
    utilization = {}
    for case, _, _ in select.largest_batches(view):
        if runtime_of(case) == KERAS and case["precision"] == "float32" and not case["xla"] and case.get("mfu"):
            utilization[(view.label(case), case["mode"])] = f"{mfu(case['mfu'])} (bs {case['batch_size']})"
    rows = [(view.label(c), f"{c['params']:,}" if c["params"] is not None else MISSING, si(c["macs_per_sample"]),
             si(c["flops_per_sample"]), utilization.get((view.label(c), "infer"), MISSING),
             utilization.get((view.label(c), "train"), MISSING)) for c in select.one_per_model(view.cases)]
    return ("Each model's cost per sample (parameters, MACs, forward FLOPs) and its MFU (% of the measured float32 "
            "ceiling) at its largest batch, float32 without XLA; report.html has every setting's efficiency",
            ("model", "params", "MACs", "FLOPs", "MFU inference (%)", "MFU training (%)"), rows)


def where_time_goes(view):
    rows = []
    for label, c in select.traced(view):
        if runtime_of(c) == KERAS:
            shares = Counter()
            for op in c["top_ops"]:
                shares[op["type"]] += op["share"]
            rows.append((label, c["case"].removeprefix(f"{c['model']}-"),
                         "; ".join(f"{kind} {share * 100:.0f}%" for kind, share in shares.most_common(TOP_OPS))))
    return (f"Where the time goes: the {TOP_OPS} operation types with the most self time per step in each model's "
            "trace (report.html has the operations by name, and each runtime's profile)",
            ("model", "traced case", "top operation types (share of the step)"), rows)


def skipped(view):
    reasons = Counter((skip.get("reason", MISSING), skip.get("failed", False))
                      for run in view.runs for skip in run.skipped)
    rows = [(("failed: " if failed else "") + reason, n) for (reason, failed), n in reasons.most_common()]
    return ("Cases not measured, by reason (each case is in report.html; options in a reason measure it)",
            ("reason", "cases"), rows)
