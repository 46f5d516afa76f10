"""`python -m bench.report`: comparison tables, CSV, plots and HTML from saved runs; `--compare` two runs.

Reads only the JSON that `pytest bench/ --benchmark-autosave` saved: no Keras, no model runs here.
"""
from __future__ import annotations

import base64
import csv
import io
import math
import os
import re
import statistics
import sys
import tempfile
from collections import Counter, defaultdict

from tabulate import tabulate

from .cli import ArgumentParser, UsageError, run
from .runs import DEFAULT_STORAGE, FIELDS, RunNoise, load_run, newest_run, resolve_ref
from .stats import MEDIAN_SE_FACTOR, PERCENTILE_MIN_SAMPLES, robust_sigma

MISSING = "-"
TIME_PHASES = ("timed", "first_call", "build", "pilot", "trace", "probes", "other")
TIME_LABELS = {"timed": "timed rounds", "first_call": "first calls", "build": "building", "pilot": "pilots",
               "trace": "traces", "probes": "probes", "other": "other"}
FORMATS = ("md", "csv", "html")
COST_EXAMPLES = (("conv5x5", "conv5x5_bottleneck"), ("inception3a_naive", "inception3a"))
GIB, MIB = 2 ** 30, 2 ** 20
P90_MIN, P99_MIN = PERCENTILE_MIN_SAMPLES["p90"], PERCENTILE_MIN_SAMPLES["p99"]
PASSES_NOTE = ("; a case timed in several passes has the geometric mean of its passes' medians, known within the "
               "spread between passes pooled over the run's cases, which is the noise between runs")


def _num(value, fmt: str) -> str:
    return MISSING if value is None else format(value, fmt)


def _pm(error) -> str:
    """A median's 95% interval as +-x%; '+-?' where the case had too few rounds to know it."""
    return f"±{error * 100:.1f}%" if error is not None else "±?"


def _mfu(mfu) -> str:
    """Above 100% the ceiling, not the model, is wrong: a probe read low."""
    if mfu is None:
        return MISSING
    return f"{mfu * 100:.1f}" if mfu <= 1 else "over the ceiling: it read low"


def _overhead(info) -> str:
    """Step time added by the harness, from the median paired ratio of harness and bare calls."""
    if not info or not info.get("throughput_ratio"):
        return MISSING
    return f"{(1 / info['throughput_ratio'] - 1) * 100:+.1f}% ({info.get('overhead_pairs', '?')} pairs)"


def _ratio(new, base) -> str:
    return f"{new / base:.2f}x" if new and base else MISSING


def _natural(text: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text))]


class Report:
    """The tables of one or more merged runs; each table is (caption, headers, rows)."""

    def __init__(self, runs):
        self.runs = runs
        self.cases = [c for r in runs for c in r.cases]
        self.multi_device = len({c["device"] for c in self.cases}) > 1

    def _label(self, case) -> str:
        return f"{case['model']} ({case['device']})" if self.multi_device else case["model"]

    def _ordered_labels(self, cases):
        return sorted({self._label(c) for c in cases}, key=_natural)

    def _settings(self):
        """(mode, precision, xla) groups present, in a stable order."""
        return sorted({(c["mode"], c["precision"], c["xla"]) for c in self.cases},
                      key=lambda s: (s[0] != "infer", s[1] != "float32", s[1], s[2]))

    def machine(self):
        rows = []
        for r in self.runs:
            m = r.machine
            peaks = m.get("peak_flops_per_s") or {}
            commit = r.commit.get("id") or MISSING
            probes = m.get("peak_probe") or {}
            rows.append((r.name, (r.datetime or MISSING)[:19], commit[:10] if len(commit) == 40 else commit,
                         m.get("device", MISSING), m.get("tensorflow_version", MISSING), m.get("keras_version", MISSING),
                         m.get("cpu_cores_logical", MISSING), _num(m.get("memory_bytes") and m["memory_bytes"] / GIB, ".1f"),
                         "; ".join(f"{p} {v / 1e12:.3g}" + (f" ({probes[p]})" if p in probes else "")
                                   for p, v in peaks.items()) or MISSING,
                         _num(m.get("peak_bandwidth_bytes_per_s") and m["peak_bandwidth_bytes_per_s"] / 1e9, ".1f"),
                         _overhead(r.overhead), len(r.cases), len(r.skipped)))
        return ("Machine and run: the device, versions, the ceiling (best TFLOP/s of the peak probes per precision, "
                "and the probe that reached it), bandwidth (GB/s, read + write) and what the harness adds to a step "
                "(interleaved with bare calls)",
                ("run", "date (UTC)", "commit", "device", "TF", "Keras", "cores", "memory (GiB)",
                 "ceiling (TFLOP/s)", "bandwidth (GB/s)", "harness overhead", "cases", "skipped"), rows)

    def precision_of_medians(self):
        rows = []
        for r in self.runs:
            errors = sorted(c["median_error"] for c in r.cases if c["median_error"] is not None)
            target = next((c["target_error"] for c in r.cases if c.get("target_error")), None)
            reached = sum(1 for c in r.cases if c["reached_target"])
            rows.append((r.name, len(r.cases), _num(target and target * 100, ".0f"), reached,
                         _pm(errors[len(errors) // 2]) if errors else MISSING,
                         _pm(errors[int(0.9 * (len(errors) - 1))]) if errors else MISSING,
                         _pm(errors[-1]) if errors else MISSING, len(r.cases) - len(errors)))
        return (f"How precise the medians are: each case's 95% interval of its median step time, relative to it"
                f"{PASSES_NOTE}",
                ("run", "cases", "target (±%)", "reached it", "median case", "90th percentile case", "widest",
                 "unknown (1 round)"), rows)

    def precisions(self):
        rows = []
        for r in self.runs:
            speedup = r.machine.get("precision_speedup") or {}
            fast = r.machine.get("fast_precisions") or []
            measured = {c["precision"] for c in r.cases}
            margin = r.machine.get("fast_margin")
            for precision, ratio in speedup.items():
                rows.append((r.name, precision, f"{ratio:.2f}x", "yes" if precision in fast else f"no (under {margin}x)",
                             "yes" if precision in measured else "no"))
        return ("Precisions: each one's ceiling over float32's on the same probes; a run measures those the device "
                "runs fast, and any named in --precision", ("run", "precision", "ceiling over float32", "fast",
                                                            "measured"), rows)

    def time_spent(self):
        rows = []
        for r in self.runs:
            spent = r.time_s
            if not spent or not spent.get("total"):
                continue
            shares = [f"{spent.get(phase, 0):.0f} s ({spent.get(phase, 0) / spent['total']:.0%})"
                      for phase in TIME_PHASES]
            plan = r.plan or {}
            ratio = plan.get("measured_over_estimated")
            budget = (f"{plan['budget_minutes']:g} min; {plan['outside_budget']} cases outside it; measured "
                      f"{_ratio(ratio, 1)} the estimates" if plan else "none")
            rows.append((r.name, f"{spent['total'] / 60:.1f} min", *shares, budget))
        return ("Where the run's time went: timed rounds (the figures), first calls (tracing, graph optimisation, XLA "
                "compiles), building models, pilot rounds, traces, ceiling and speed probes, and the rest (start-up, "
                "collection, freeing models)",
                ("run", "total", *(TIME_LABELS[p] for p in TIME_PHASES), "time budget"), rows)

    def cost(self):
        first = {}
        for c in self.cases:
            first.setdefault(c["model"], c)
        rows = [(m, "x".join(map(str, c["input_shape"] or [])) or MISSING, _num(c["params"], ","),
                 _num(c["trainable_params"], ","), _num(c["macs_per_sample"] and c["macs_per_sample"] / 1e9, ".3f"),
                 _num(c["flops_per_sample"] and c["flops_per_sample"] / 1e9, ".3f"),
                 _num(c["activation_bytes_per_sample"] and c["activation_bytes_per_sample"] / MIB, ".2f"),
                 _num(c["depth"], "d"))
                for m, c in sorted(first.items(), key=lambda kv: _natural(kv[0]))]
        return ("Model cost per sample: parameters, GMACs (multiply-accumulates), GFLOPs (forward, all ops), "
                "activation memory (MiB) and depth (weighted layers on the longest path)",
                ("model", "input", "params", "trainable", "GMACs", "GFLOPs", "activations (MiB)", "depth"), rows)

    def _grid(self, cases, cell):
        """Rows of models, columns of batch sizes."""
        batches = sorted({c["batch_size"] for c in cases})
        by_key = {(self._label(c), c["batch_size"]): c for c in cases}
        rows = [(label, *(cell(by_key[(label, b)]) if (label, b) in by_key else MISSING for b in batches))
                for label in self._ordered_labels(cases)]
        return batches, rows

    def speed(self):
        tables = []
        for mode, precision, xla in self._settings():
            cases = [c for c in self.cases if (c["mode"], c["precision"], c["xla"]) == (mode, precision, xla)]
            setting = f"{mode}, {precision}, XLA {'on' if xla else 'off'}"
            batches, rows = self._grid(cases, lambda c: f"{_num(c['throughput'], ',.1f')} {_pm(c['median_error'])}")
            tables.append((f"Throughput (samples/s, from the median step, ± its 95% interval{PASSES_NOTE}) by batch "
                           f"size: {setting}", ("model", *(f"bs {b}" for b in batches)), rows))
            batches, rows = self._grid(cases, lambda c: " / ".join(_num(c[f"latency_{p}_ms"], ".2f")
                                                                   for p in ("p50", "p90", "p99"))
                                       + f" (n={_num(c['rounds'], 'd')})")
            tables.append((f"Latency per step (ms, p50 / p90 / p99, n timed steps; a tail percentile is '-' below "
                           f"{P90_MIN} steps for p90 and {P99_MIN} for p99, --latency-samples measures them) by "
                           f"batch size: {setting}", ("model", *(f"bs {b}" for b in batches)), rows))
        return tables

    def _ratio_table(self, caption, vary, base_value, new_value):
        """Throughput of `new_value` over `base_value` of one setting, the other settings held."""
        index = {(self._label(c), c["mode"], c["precision"], c["xla"], c["batch_size"]): c for c in self.cases}
        rows = defaultdict(dict)
        for (label, mode, precision, xla, batch), case in index.items():
            setting = {"mode": mode, "precision": precision, "xla": xla}
            if setting[vary] != new_value:
                continue
            base_key = dict(setting, **{vary: base_value})
            base = index.get((label, base_key["mode"], base_key["precision"], base_key["xla"], batch))
            if base:
                held = ", ".join(f"{k} {'on' if v is True else 'off' if v is False else v}"
                                 for k, v in setting.items() if k != vary)
                rows[(label, held)][batch] = _ratio(case["throughput"], base["throughput"])
        batches = sorted({b for cells in rows.values() for b in cells})
        body = [(label, held, *(cells.get(b, MISSING) for b in batches))
                for (label, held), cells in sorted(rows.items(), key=lambda kv: (_natural(kv[0][0]), kv[0][1]))]
        return caption, ("model", "setting", *(f"bs {b}" for b in batches)), body

    def xla(self):
        return self._ratio_table("What XLA buys: throughput with XLA over without (above 1.00x: XLA is faster)",
                                 "xla", False, True)

    def precision(self):
        return [self._ratio_table(f"What {p} buys: throughput over float32 (above 1.00x: faster)", "precision",
                                  "float32", p)
                for p in sorted({c["precision"] for c in self.cases} - {"float32"})]

    def efficiency(self):
        largest = {}
        for c in self.cases:
            key = (self._label(c), c["mode"], c["precision"], c["xla"])
            if key not in largest or c["batch_size"] > largest[key]["batch_size"]:
                largest[key] = c
        rows = [(label, mode, precision, "on" if xla else "off", c["batch_size"], _num(c["achieved_tflops"], ".3f"),
                 _mfu(c["mfu"]), _num(c["compile_s"], ".2f"),
                 _num(c["peak_memory_bytes"] and c["peak_memory_bytes"] / MIB, ",.1f"))
                for (label, mode, precision, xla), c in sorted(largest.items(), key=lambda kv: _natural(kv[0]))]
        return ("Efficiency at each setting's largest batch: achieved TFLOP/s, MFU (% of the measured ceiling), "
                "first-call time (trace + compile, s) and peak allocator memory (MiB)",
                ("model", "mode", "precision", "XLA", "batch", "TFLOP/s", "MFU (%)", "compile (s)",
                 "peak memory (MiB)"), rows)

    def cost_example(self):
        index = {(c["model"], c["device"], c["mode"], c["precision"], c["xla"], c["batch_size"]): c
                 for c in self.cases}
        rows = []
        for big, small in COST_EXAMPLES:
            for key, case in sorted(index.items(), key=lambda kv: _natural(kv[0])):
                if key[0] != big or (small, *key[1:]) not in index:
                    continue
                other = index[(small, *key[1:])]
                _, device, mode, precision, xla, batch = key
                rows.append((f"{big} / {small}", device, mode, precision, "on" if xla else "off", batch,
                             _ratio(case["macs_per_sample"], other["macs_per_sample"]),
                             _ratio(case["latency_p50_ms"], other["latency_p50_ms"])))
        return ("The cost example of the source documents: how many times the MACs and the measured median "
                "latency of the module without 1x1 reductions exceed those of the one with them",
                ("pair", "device", "mode", "precision", "XLA", "batch", "MACs ratio", "latency ratio"), rows)

    def top_ops(self, per_model: int = 5):
        chosen = {}
        for c in self.cases:
            if c["top_ops"] and (c["model"] not in chosen or
                                 (c["mode"], c["batch_size"]) > (chosen[c["model"]]["mode"],
                                                                 chosen[c["model"]]["batch_size"])):
                chosen[c["model"]] = c
        rows = [(model, c["case"], op["name"], op["type"], f"{op['self_time_us']:,.0f}", f"{op['share'] * 100:.1f}")
                for model, c in sorted(chosen.items(), key=lambda kv: _natural(kv[0]))
                for op in c["top_ops"][:per_model]]
        return (f"Where the time goes: the {per_model} operations with the most self time per step, from each "
                "model's trace (the largest traced batch)",
                ("model", "case", "operation", "type", "self time (us/step)", "share (%)"), rows)

    def skipped(self):
        rows = [(run.name, skip.get("case", MISSING), skip.get("reason", MISSING))
                for run in self.runs for skip in run.skipped]
        return "Skipped cases and why (options in the reason measure them)", ("run", "case", "reason"), rows

    def tables(self):
        tables = [self.machine(), self.precisions(), self.time_spent(), self.precision_of_medians(), self.cost(), *self.speed(), self.xla(), *self.precision(), self.efficiency(),
                  self.cost_example(), self.top_ops(), self.skipped()]
        return [t for t in tables if t[2]]


def atomic_write(path: str, data: bytes | str) -> None:
    """Temporary file in the same folder, then rename: an interrupted write leaves the old file or none."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def to_csv(cases) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for case in cases:
        writer.writerow({k: ("x".join(map(str, v)) if isinstance(v, list) else v) for k, v in case.items()})
    return out.getvalue()


def to_markdown(tables, plots) -> str:
    parts = ["# cnnbench report\n"]
    for caption, headers, rows in tables:
        parts.append(f"*{caption}*\n\n{tabulate(rows, headers=headers, tablefmt='github', disable_numparse=True)}\n")
    for title, path in plots:
        parts.append(f"![{title}]({path})\n")
    return "\n".join(parts)


def to_html(tables, plots, out_dir) -> str:
    import html
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cnnbench report</title><style>",
             "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin-bottom:2em}",
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} caption{text-align:left;padding:4px 0}",
             "</style></head><body><h1>cnnbench report</h1>"]
    for caption, headers, rows in tables:
        table = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True)
        parts.append(table.replace("<table>", f"<table><caption>{html.escape(caption)}</caption>", 1))
    for title, path in plots:
        with open(os.path.join(out_dir, path), "rb") as f:
            data = base64.b64encode(f.read()).decode()
        parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def summary(runs, cases, written) -> str:
    devices = sorted({c["device"] for c in cases})
    lines = [f"{len(cases)} cases of {len({c['model'] for c in cases})} models from "
             f"{', '.join(r.name for r in runs)} on {', '.join(devices)}"]
    measured = [c for c in cases if c["throughput"]]
    if measured:
        best = max(measured, key=lambda c: c["throughput"])
        lines.append(f"highest throughput: {best['case']} at {best['throughput']:,.1f} samples/s")
    known = [c for c in cases if c.get("median_error") is not None]
    if known:
        reached = sum(1 for c in known if c["reached_target"])
        lines.append(f"precision: {reached} of {len(cases)} cases know their median within their target; "
                     f"median case ±{statistics.median(c['median_error'] for c in known) * 100:.1f}%")
    reasons = Counter(skip.get("reason", MISSING) for r in runs for skip in r.skipped)
    if reasons:
        lines.append("skipped: " + "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                     + " (the report's last table lists them)")
    for r in runs:
        if r.time_s and r.time_s.get("total"):
            lines.append(f"{r.name}: {r.time_s['total'] / 60:.1f} min, "
                         f"{r.time_s.get('timed', 0) / r.time_s['total']:.0%} of it in timed rounds")
    lines.append("wrote " + ", ".join(written))
    return "\n".join(lines)


def write_report(runs, out_dir: str, formats, with_plots: bool = True) -> list[str]:
    report = Report(runs)
    tables = report.tables()
    written, plots = [], []
    if with_plots and ("md" in formats or "html" in formats):
        from .plots import write_plots
        plots = write_plots(report.cases, out_dir, atomic_write)
        written.extend(os.path.join(out_dir, p) for _, p in plots)
    outputs = {"md": ("report.md", lambda: to_markdown(tables, plots)), "csv": ("report.csv", lambda: to_csv(report.cases)),
               "html": ("report.html", lambda: to_html(tables, plots, out_dir))}
    for fmt in formats:
        name, render = outputs[fmt]
        atomic_write(os.path.join(out_dir, name), render())
        written.append(os.path.join(out_dir, name))
    return written


# --- comparing two runs ---------------------------------------------------------------------------------------
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
    speeds = [[math.log(s) for c in run.cases for s in c.get("machine_speeds_flops") or []] for run in (base_run, new_run)]
    if any(len(logs) < 3 for logs in speeds):
        return 0.0, 0.0, "no machine correction (a run recorded no speed probe)"
    if any(base_run.machine.get(k) is None or base_run.machine.get(k) != new_run.machine.get(k) for k in keys):
        return 0.0, 0.0, "no machine correction (the runs differ in device, TensorFlow or usable cores)"
    shift = statistics.median(speeds[1]) - statistics.median(speeds[0])
    # the standard error of a median, from the probe's robust spread in each run
    error = 1.96 * math.sqrt(sum((MEDIAN_SE_FACTOR * robust_sigma(logs)) ** 2 / len(logs) for logs in speeds))
    moved = f"{abs(math.expm1(shift)) * 100:.1f}% {'faster' if shift > 0 else 'slower'}"
    return shift, error, f"the machine ran {moved} in the new run (±{error * 100:.1f}%), corrected for"


def verdict(base, new, base_noise: RunNoise = RunNoise(None, None, ""), new_noise: RunNoise = RunNoise(None, None, ""),
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


def _band(band: float) -> str:
    return f"-{-math.expm1(-band) * 100:.1f}/+{math.expm1(band) * 100:.1f}" if math.isfinite(band) else "±inf"


def compare(base_run, new_run):
    base = {(c["device"], c["case"]): c for c in base_run.cases}
    new = {(c["device"], c["case"]): c for c in new_run.cases}
    noises = base_run.noise, new_run.noise
    shift, shift_error, shift_note = machine_shift(base_run, new_run)
    rows, slower = [], []
    for key in sorted(base.keys() | new.keys(), key=lambda k: _natural(k[1])):
        device, case = key
        if key not in new:
            rows.append((case, device, _num(base[key]["throughput"], ",.1f"), MISSING, MISSING, MISSING, "only in base"))
        elif key not in base:
            rows.append((case, device, MISSING, _num(new[key]["throughput"], ",.1f"), MISSING, MISSING, "only in new"))
        elif not (base[key]["throughput"] and new[key]["throughput"]):
            rows.append((case, device, MISSING, MISSING, MISSING, MISSING, "no throughput"))
        else:
            change, band, word = verdict(base[key], new[key], *noises, shift, shift_error)
            rows.append((case, device, f"{base[key]['throughput']:,.1f}", f"{new[key]['throughput']:,.1f}",
                         f"{change * 100:+.1f}", _band(band), word))
            if word == "slower":
                slower.append((case, -change * 100))
    sources = "; ".join(f"{r.name}: {n.source}" + (f", sigma {n.sigma * 100:.1f}%" if n.sigma is not None else "")
                        for r, n in zip((base_run, new_run), noises))
    caption = (f"Throughput of {new_run.name} against {base_run.name} (samples/s; change in %; a verdict needs a "
               f"change, less the machine's own, outside the noise band, which allows for the noise between runs of the "
               f"same code: {sources}; {shift_note})")
    return caption, ("case", "device", "base", "new", "change (%)", "noise band (%)", "verdict"), rows, slower


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.report", description=(
        "Tables (markdown, CSV, HTML) and plots from runs saved by `pytest bench/ --benchmark-autosave`."))
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="saved runs to merge: paths or run numbers such as 0003 (default: the newest)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--format", default="md,csv", help="comma list of md, csv, html (default: md,csv)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="pytest-benchmark's storage (default: .benchmarks)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    parser.add_argument("--compare", nargs="+", metavar=("BASE", "NEW"),
                        help="compare two runs case by case (NEW defaults to the newest run)")
    parser.add_argument("--fail-above", type=float, metavar="PCT",
                        help="with --compare: exit 1 when a case is slower by more than PCT percent")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    formats = [f.strip() for f in args.format.split(",")]
    if not formats or any(f not in FORMATS for f in formats):
        raise UsageError(f"--format takes a comma list of {', '.join(FORMATS)}; got {args.format!r}")
    if args.fail_above is not None and (args.compare is None or args.fail_above < 0):
        raise UsageError("--fail-above takes a percentage of 0 or more and goes with --compare")
    if args.compare:
        if len(args.compare) > 2 or args.runs:
            raise UsageError("--compare takes BASE and at most one NEW run, and no other RUN")
        base = load_run(resolve_ref(args.compare[0], args.storage))
        new = load_run(resolve_ref(args.compare[1], args.storage) if len(args.compare) == 2
                       else newest_run(args.storage))
        caption, headers, rows, slower = compare(base, new)
        text = f"*{caption}*\n\n{tabulate(rows, headers=headers, tablefmt='github', disable_numparse=True)}\n"
        atomic_write(os.path.join(args.out, "compare.md"), text)
        print(text)
        if args.fail_above is not None:
            over = [(case, pct) for case, pct in slower if pct > args.fail_above]
            if over:
                print(f"{len(over)} case(s) slower by more than {args.fail_above}%: "
                      + ", ".join(f"{c} ({p:.1f}%)" for c, p in over), file=sys.stderr)
                return 1
        return 0
    paths = [resolve_ref(r, args.storage) for r in args.runs] or [newest_run(args.storage)]
    runs = [load_run(p) for p in paths]
    written = write_report(runs, args.out, formats, with_plots=not args.no_plots)
    print(summary(runs, [c for r in runs for c in r.cases], written))
    return 0


if __name__ == "__main__":
    sys.exit(run("python -m bench.report", main))
