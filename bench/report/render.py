"""The report's files: markdown, CSV and a self-contained HTML page, and the summary a run of the report prints."""
from __future__ import annotations

import base64
import csv
import html
import io
import os
import re
import textwrap
from collections import Counter

from tabulate import tabulate

from models.registry import shape_text

from ..core.files import atomic_write
from .cells import MISSING
from .findings import findings
from .runs import FIELDS
from .select import median_precision
from .tables import completeness, tables

FORMATS = ("md", "csv", "html")
WIDTH = 120  # the terminal a summary fits
HTML_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1400px} summary{cursor:pointer;margin:0.5em 0} "
              "table{border-collapse:collapse;margin-bottom:2em;max-width:100%} "
              "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;overflow-wrap:anywhere} "
              "caption{text-align:left;padding:4px 0} li{margin:0.3em 0} img{max-width:100%}")


def to_csv(cases) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for case in cases:
        writer.writerow({k: (shape_text(v) if isinstance(v, list) else v) for k, v in case.items()})
    return out.getvalue()


def md_table(table) -> str:
    caption, headers, rows = table
    return f"*{caption}*\n\n{tabulate(rows, headers=headers, tablefmt='github', disable_numparse=True)}\n"


def to_markdown(opening, found, plots) -> str:
    lines, family_table = opening
    parts = ["# cnnbench report\n", "## Findings\n", *(f"- {line}" for line in lines), ""]
    if family_table[2]:
        parts.append(md_table(family_table))
    parts.append("## Plots\n")
    parts.extend(f"![{title}]({path})\n" for title, path in plots)
    parts.append("## Tables\n")
    parts.extend(md_table(table) for table in found)
    return "\n".join(parts)


def _html_table(table) -> str:
    caption, headers, rows = table
    text = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True)
    return text.replace("<table>", f"<table><caption>{html.escape(caption)}</caption>", 1)


def to_html(opening, found, plots, out_dir, detail=()) -> str:
    """One self-contained page (plots inlined), findings first, every case's own rows folded at the end."""
    lines, family_table = opening
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cnnbench report</title><style>{HTML_STYLE}"
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
    parts.extend(_html_table(table) for table in found)
    if detail:
        parts.append("<h2>Every case</h2>")
        parts.extend(f"<details><summary>{html.escape(table[0])}</summary>{_html_table(table)}</details>"
                     for table in detail)
    parts.append("</body></html>")
    return "\n".join(parts)


def wrap(lines) -> str:
    return "\n".join(wrapped for line in lines for wrapped in textwrap.wrap(line, WIDTH, subsequent_indent="  "))


def summary(runs, written, merged_note: str | None = None) -> str:
    cases = [c for r in runs for c in r.cases]
    served = [s for r in runs for s in r.serving]  # LoadGen's scenarios: cases too, with figures of their own
    every = cases + served
    lines = [f"{len(cases)} cases{f' and {len(served)} serving scenarios' if served else ''} of "
             f"{len({c['model'] for c in every})} models from {', '.join(r.name for r in runs)} on "
             f"{', '.join(sorted({c['device'] for c in every}))}"]
    if merged_note:
        lines.append(merged_note)
    measured = [c for c in cases if c["throughput"]]
    if measured:
        best = max(measured, key=lambda c: c["throughput"])
        lines.append(f"highest throughput: {best['case']} at {best['throughput']:,.1f} samples/s")
    for r in runs:
        found = median_precision(r)
        if found["median_of_known"] is not None:
            lines.append(f"precision: {found['reached']} of {found['cases']} cases of {r.name} know their median "
                         f"within their target; median case ±{found['median_of_known'] * 100:.1f}%")
    reasons = Counter(skip.get("reason", MISSING) for r in runs for skip in r.skipped)
    if reasons:
        lines.append("skipped: " + "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                     + " (the report's last table counts them by reason)")
    for r in runs:
        if r.incomplete:
            lines.append(f"{r.name}: {completeness(r)}; `pytest bench/ --resume {r.name}` measures the rest")
        if r.time_s and r.time_s.get("total"):
            lines.append(f"{r.name}: {r.time_s['total'] / 60:.1f} min, "
                         f"{r.time_s.get('timed', 0) / r.time_s['total']:.0%} of it in timed rounds")
    lines.append("wrote " + ", ".join(written))
    return wrap(lines)


def write_report(runs, out_dir: str, formats, with_plots: bool = True, merged_note: str | None = None) -> list[str]:
    (found, detail), opening = tables(runs), findings(runs, merged_note)
    written, plots = [], []
    if with_plots and ("md" in formats or "html" in formats):
        from .plots import write_plots
        plots = write_plots(runs, out_dir, atomic_write)
        written.extend(os.path.join(out_dir, p) for _, p in plots)
    outputs = {"md": ("report.md", lambda: to_markdown(opening, found, plots)),
               "csv": ("report.csv", lambda: to_csv([c for r in runs for c in (*r.cases, *r.scaled)])),
               "html": ("report.html", lambda: to_html(opening, found, plots, out_dir, detail))}
    for fmt in formats:
        name, render = outputs[fmt]
        atomic_write(os.path.join(out_dir, name), render())
        written.append(os.path.join(out_dir, name))
    return written
