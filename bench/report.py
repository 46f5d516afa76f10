"""`python -m bench.report`: comparison tables, CSV, plots and HTML from saved runs; `--compare` two runs.

Reads only the JSON that `pytest bench/ --benchmark-autosave` saved: no Keras, no model runs here.
"""
from __future__ import annotations

import base64
import csv
import io
import os
import re
import statistics
import sys
import tempfile
import textwrap
from collections import Counter, defaultdict

from tabulate import tabulate

from .cli import ArgumentParser, UsageError, run
from .findings import COST_EXAMPLES, backend_pairs, findings, other_backends
from .runs import (DEFAULT_STORAGE, FIELDS, backend_of, companion_runs, load_run, natural_key, newest_run,
                   resolve_ref)
from .stats import PERCENTILE_MIN_SAMPLES
from .verdicts import band_text, machine_shift, verdict

MISSING = "-"
TIME_PHASES = ("timed", "first_call", "build", "pilot", "trace", "probes", "other")
TIME_LABELS = {"timed": "timed rounds", "first_call": "first calls", "build": "building", "pilot": "pilots",
               "trace": "traces", "probes": "probes", "other": "other"}
FORMATS = ("md", "csv", "html")
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


def _si(value) -> str:
    """A count in the unit that fits it: 416.5 M, 15.47 G (a fixed GMACs column showed LeNet-5 as 0.000)."""
    if value is None:
        return MISSING
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {unit}"
    return f"{value:.4g}"


def _completeness(run) -> str:
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


class Report:
    """The tables of one or more merged runs; each table is (caption, headers, rows)."""

    def __init__(self, runs):
        self.runs = runs
        self.cases = [c for r in runs for c in r.cases]
        self.multi_device = len({c["device"] for c in self.cases}) > 1
        self.multi_backend = len({c.get("backend") for c in self.cases}) > 1

    def _label(self, case) -> str:
        where = ([case["device"]] if self.multi_device else []) + ([case["backend"]] if self.multi_backend else [])
        return f"{case['model']} ({', '.join(where)})" if where else case["model"]

    def _ordered_labels(self, cases):
        return sorted({self._label(c) for c in cases}, key=natural_key)

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
                         m.get("device", MISSING), _backend(m), m.get("keras_version", MISSING),
                         m.get("cpu_cores_logical", MISSING), _num(m.get("memory_bytes") and m["memory_bytes"] / GIB, ".1f"),
                         "; ".join(f"{p} {v / 1e12:.3g}" + (f" ({probes[p]})" if p in probes else "")
                                   for p, v in peaks.items()) or MISSING,
                         _num(m.get("peak_bandwidth_bytes_per_s") and m["peak_bandwidth_bytes_per_s"] / 1e9, ".1f"),
                         _overhead(r.overhead), len(r.cases), len(r.skipped), _completeness(r)))
        return ("Machine and run: the device, versions, the ceiling (best TFLOP/s of the peak probes per precision, "
                "and the probe that reached it), bandwidth (GB/s, read + write) and what the harness adds to a step "
                "(interleaved with bare calls)",
                ("run", "date (UTC)", "commit", "device", "backend", "Keras", "cores", "memory (GiB)",
                 "ceiling (TFLOP/s)", "bandwidth (GB/s)", "harness overhead", "cases", "skipped", "complete"), rows)

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
                 _num(c["trainable_params"], ","), _si(c["macs_per_sample"]), _si(c["flops_per_sample"]),
                 _num(c["activation_bytes_per_sample"] and c["activation_bytes_per_sample"] / MIB, ".2f"),
                 _num(c["depth"], "d"))
                for m, c in sorted(first.items(), key=lambda kv: natural_key(kv[0]))]
        return ("Model cost per sample: parameters, MACs (multiply-accumulates), FLOPs (forward, all ops), "
                "activation memory (MiB) and depth (weighted layers on the longest path)",
                ("model", "input", "params", "trainable", "MACs", "FLOPs", "activations (MiB)", "depth"), rows)

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
            batches, rows = self._grid(cases, lambda c: f"{_num(c['throughput'], ',.1f')} {_pm(c['median_error'])}"
                                                          f" n={_num(c['rounds'], 'd')}")
            tables.append((f"Throughput (samples/s, from the median of n timed steps, ± its 95% interval{PASSES_NOTE}) by batch "
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
                for (label, held), cells in sorted(rows.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1]))]
        return caption, ("model", "setting", *(f"bs {b}" for b in batches)), body

    def xla(self):
        return self._ratio_table("What XLA buys: throughput with XLA over without (above 1.00x: XLA is faster)",
                                 "xla", False, True)

    def precision(self):
        return [self._ratio_table(f"What {p} buys: throughput over float32 (above 1.00x: faster)", "precision",
                                  "float32", p)
                for p in sorted({c["precision"] for c in self.cases} - {"float32"})]

    def _why_smaller(self, case, setting_largest) -> str:
        """Why a model's largest batch in a setting is below the setting's largest: its skipped cases say."""
        if case["batch_size"] >= setting_largest:
            return str(case["batch_size"])
        reasons = sorted({(skip["batch_size"], skip["reason"]) for run in self.runs for skip in run.skipped
                          if skip.get("model") == case["model"] and skip.get("batch_size", 0) > case["batch_size"]
                          and all(skip.get(k) == case[k] for k in ("mode", "precision", "xla"))})
        why = "; ".join(f"bs {batch} {reason}" for batch, reason in reasons) or "not in the run"
        return f"{case['batch_size']} (not {setting_largest}: {why})"

    def efficiency(self):
        largest, setting_largest = {}, Counter()
        for c in self.cases:
            key = (self._label(c), c["mode"], c["precision"], c["xla"])
            if key not in largest or c["batch_size"] > largest[key]["batch_size"]:
                largest[key] = c
            setting = (c["device"], c["mode"], c["precision"], c["xla"])
            setting_largest[setting] = max(setting_largest[setting], c["batch_size"])
        rows = [(label, mode, precision, "on" if xla else "off",
                 self._why_smaller(c, setting_largest[(c["device"], mode, precision, xla)]),
                 _num(c["achieved_tflops"], ".3f"), _mfu(c["mfu"]), _num(c["compile_s"], ".2f"),
                 _num(c["peak_memory_bytes"] and c["peak_memory_bytes"] / MIB, ",.1f")
                 + (f" ({c['peak_memory_note']})" if c.get("peak_memory_note") else ""))
                for (label, mode, precision, xla), c in sorted(largest.items(), key=lambda kv: natural_key(kv[0]))]
        return ("Efficiency at each setting's largest batch (the batch column says when a model's is smaller, and "
                "why): achieved TFLOP/s, MFU (% of the measured ceiling), first-call time (trace + compile, s) and "
                "peak allocator memory (MiB)",
                ("model", "mode", "precision", "XLA", "batch", "TFLOP/s", "MFU (%)", "compile (s)",
                 "peak memory (MiB)"), rows)

    def cost_example(self):
        index = {(c["model"], c["device"], c["backend"], c["mode"], c["precision"], c["xla"], c["batch_size"]): c
                 for c in self.cases}
        rows = []
        for big, small in COST_EXAMPLES:
            for key, case in sorted(index.items(), key=lambda kv: natural_key(kv[0])):
                if key[0] != big or (small, *key[1:]) not in index:
                    continue
                other = index[(small, *key[1:])]
                _, device, backend, mode, precision, xla, batch = key
                rows.append((f"{big} / {small}", f"{device}, {backend}" if self.multi_backend else device, mode,
                             precision, "on" if xla else "off", batch,
                             _ratio(case["macs_per_sample"], other["macs_per_sample"]),
                             _ratio(case["latency_p50_ms"], other["latency_p50_ms"])))
        return ("The cost example of the source documents: how many times the MACs and the measured median "
                "latency of the module without 1x1 reductions exceed those of the one with them",
                ("pair", "device", "mode", "precision", "XLA", "batch", "MACs ratio", "latency ratio"), rows)

    def top_ops(self, per_model: int = 5):
        chosen = {}
        for c in self.cases:
            label = self._label(c)
            if c["top_ops"] and (label not in chosen or
                                 (c["mode"], c["batch_size"]) > (chosen[label]["mode"], chosen[label]["batch_size"])):
                chosen[label] = c
        rows = [(model, c["case"], op["name"], op["type"], f"{op['self_time_us']:,.0f}", f"{op['share'] * 100:.1f}")
                for model, c in sorted(chosen.items(), key=lambda kv: natural_key(kv[0]))
                for op in c["top_ops"][:per_model]]
        return (f"Where the time goes: the {per_model} operations with the most self time per step, from each "
                "model's trace (the largest traced batch)",
                ("model", "case", "operation", "type", "self time (us/step)", "share (%)"), rows)

    def backends(self):
        tables = []
        for backend in other_backends(self.runs):
            rows = [(f"{pair.new['model']} ({pair.new['device']})" if self.multi_device else pair.new["model"],
                     pair.new["mode"], pair.new["precision"], pair.new["batch_size"], xla,
                     f"{_num(pair.base['throughput'], ',.1f')} {_pm(pair.base['median_error'])}",
                     f"{_num(pair.new['throughput'], ',.1f')} {_pm(pair.new['median_error'])}",
                     f"{pair.ratio:.2f}x", band_text(pair.band), pair.word)
                    for xla, pair in sorted(backend_pairs(self.runs, backend), key=lambda found: (
                        natural_key(found[1].new["model"]), found[1].new["mode"], found[1].new["precision"],
                        found[1].new["batch_size"], found[0]))]
            tables.append((f"What {backend} buys over TensorFlow: throughput (samples/s, ± the 95% interval of the "
                           f"median) of the same case on both, against TensorFlow with XLA as {backend} ran it and with "
                           "XLA off (its default); a verdict needs the ratio outside the noise band (%, 99%) of the two "
                           "runs", ("model", "mode", "precision", "batch", "TensorFlow XLA", "TensorFlow", backend,
                                    f"{backend} / TensorFlow", "noise band (%)", "verdict"), rows))
        return tables

    def scaling(self):
        """Each scaled case under its one-replica baseline of the same run."""
        rows = []
        for saved in self.runs:
            baselines = {c["case"]: c for c in saved.cases}
            shown = set()
            for case in sorted(saved.scaled, key=lambda c: (natural_key(c["case"]), c.get("replicas") or 1)):
                result = case.get("scaling") or {}
                base = baselines.get(result.get("baseline"))
                if base is not None and base["case"] not in shown:
                    shown.add(base["case"])
                    rows.append(self._scaling_row(base, "1.00x", "1.00"))
                speedup = _num(result.get("speedup"), ".2f") + ("x" if result.get("speedup") else "")
                error = f" ±{result['error']:.2f}" if result.get("error") is not None else ""
                efficiency = (f"{result['efficiency']:.2f}{error}" if result else "no one-replica case in the run")
                rows.append(self._scaling_row(case, speedup, efficiency))
        return ("Scaling: global throughput on N replicas (this host's devices) or workers (tf.distribute hosts), "
                "each under its one-replica case of the same run; efficiency = throughput at N over N times the "
                "throughput at 1, ± its 95% interval. On a CPU the replicas share the cores, and a cluster's "
                "one-worker case ran on every worker at once (README: Scaling out)",
                ("model", "mode", "precision", "batch / replica", "replicas", "workers", "global batch",
                 "throughput (samples/s)", "speed-up", "efficiency", "all-reduce"), rows)

    def _scaling_row(self, case, speedup, efficiency):
        return (self._label(case), case["mode"], case["precision"], case["batch_size"], case.get("replicas") or 1,
                case.get("workers") or 1, case.get("global_batch") or case["batch_size"],
                f"{_num(case['throughput'], ',.1f')} {_pm(case['median_error'])} n={_num(case['rounds'], 'd')}",
                speedup, efficiency, case.get("all_reduce") or MISSING)

    def skipped(self):
        rows = [(run.name, skip.get("case", MISSING),
                 ("failed: " if skip.get("failed") else "") + skip.get("reason", MISSING))
                for run in self.runs for skip in run.skipped]
        return ("Skipped cases and why (options in the reason measure them; a case that failed says so)",
                ("run", "case", "reason"), rows)

    def tables(self):
        tables = [self.machine(), self.precisions(), self.time_spent(), self.precision_of_medians(), self.cost(),
                  *self.speed(), self.xla(), *self.precision(), *self.backends(), self.efficiency(), self.scaling(),
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


def _md_table(table) -> str:
    caption, headers, rows = table
    return f"*{caption}*\n\n{tabulate(rows, headers=headers, tablefmt='github', disable_numparse=True)}\n"


def to_markdown(opening, tables, plots) -> str:
    lines, family_table = opening
    parts = ["# cnnbench report\n", "## Findings\n", *(f"- {line}" for line in lines), ""]
    if family_table[2]:
        parts.append(_md_table(family_table))
    parts.append("## Plots\n")
    parts.extend(f"![{title}]({path})\n" for title, path in plots)
    parts.append("## Tables\n")
    parts.extend(_md_table(table) for table in tables)
    return "\n".join(parts)


def _html_table(table) -> str:
    import html
    caption, headers, rows = table
    text = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True)
    return text.replace("<table>", f"<table><caption>{html.escape(caption)}</caption>", 1)


def to_html(opening, tables, plots, out_dir) -> str:
    """One self-contained page (plots inlined), findings first."""
    import html
    lines, family_table = opening
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cnnbench report</title><style>",
             "body{font-family:sans-serif;margin:2em;max-width:1500px} table{border-collapse:collapse;margin-bottom:2em}",
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} caption{text-align:left;padding:4px 0}",
             "li{margin:0.3em 0} img{max-width:100%}",
             "</style></head><body><h1>cnnbench report</h1><h2>Findings</h2><ul>"]
    parts.extend("<li>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(line)) + "</li>"
                 for line in lines)
    parts.append("</ul>")
    if family_table[2]:
        parts.append(_html_table(family_table))
    parts.append("<h2>Plots</h2>")
    for title, path in plots:
        with open(os.path.join(out_dir, path), "rb") as f:
            data = base64.b64encode(f.read()).decode()
        parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(title)}</figcaption></figure>")
    parts.append("<h2>Tables</h2>")
    parts.extend(_html_table(table) for table in tables)
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
        if r.incomplete:
            lines.append(f"{r.name}: {_completeness(r)}; `pytest bench/ --resume {r.name}` measures the rest")
        if r.time_s and r.time_s.get("total"):
            lines.append(f"{r.name}: {r.time_s['total'] / 60:.1f} min, "
                         f"{r.time_s.get('timed', 0) / r.time_s['total']:.0%} of it in timed rounds")
    lines.append("wrote " + ", ".join(written))
    return "\n".join(wrapped for line in lines for wrapped in textwrap.wrap(line, 120, subsequent_indent="  "))


def write_report(runs, out_dir: str, formats, with_plots: bool = True) -> list[str]:
    report = Report(runs)
    tables, opening = report.tables(), findings(runs)
    written, plots = [], []
    if with_plots and ("md" in formats or "html" in formats):
        from .plots import write_plots
        plots = write_plots(runs, out_dir, atomic_write)
        written.extend(os.path.join(out_dir, p) for _, p in plots)
    outputs = {"md": ("report.md", lambda: to_markdown(opening, tables, plots)),
               "csv": ("report.csv", lambda: to_csv(report.cases + [c for r in runs for c in r.scaled])),
               "html": ("report.html", lambda: to_html(opening, tables, plots, out_dir))}
    for fmt in formats:
        name, render = outputs[fmt]
        atomic_write(os.path.join(out_dir, name), render())
        written.append(os.path.join(out_dir, name))
    return written


# --- comparing two runs ---------------------------------------------------------------------------------------
def compare(base_run, new_run):
    base = {(c["device"], c["case"]): c for c in (*base_run.cases, *base_run.scaled)}
    new = {(c["device"], c["case"]): c for c in (*new_run.cases, *new_run.scaled)}
    noises = base_run.noise, new_run.noise
    shift, shift_error, shift_note = machine_shift(base_run, new_run)
    rows, slower = [], []
    for key in sorted(base.keys() | new.keys(), key=lambda k: natural_key(k[1])):
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
                         f"{change * 100:+.1f}", band_text(band), word))
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
                        help="saved runs to merge: paths or run numbers such as 0003 (default: the newest, and "
                        "the newest run of each other backend on its device and commit)")
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
    if args.runs:
        runs = [load_run(resolve_ref(r, args.storage)) for r in args.runs]
    else:  # the newest run, beside the newest of each other backend on its device and commit
        runs = [load_run(newest_run(args.storage))]
        runs += [load_run(path) for path in companion_runs(runs[0], args.storage)]
    written = write_report(runs, args.out, formats, with_plots=not args.no_plots)
    print(summary(runs, [c for r in runs for c in r.cases], written))
    return 0


if __name__ == "__main__":
    sys.exit(run("python -m bench.report", main))
