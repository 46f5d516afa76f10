"""`python -m bench.report`: findings, tables, CSV, plots and HTML from saved runs; `--compare` two runs."""
from __future__ import annotations

import os
import sys

from ..core.cli import ArgumentParser, UsageError, run
from ..core.files import atomic_write
from .compare import HEADERS, RATIO_HEADERS, as_rows, compare, compare_ratios, ratio_rows, terminal_summary
from .render import FORMATS, md_table, summary, wrap, write_report
from .runs import DEFAULT_STORAGE, companion_runs, load_run, merged_note, newest_run, resolve_ref


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.report", description=(
        "Tables (markdown, CSV, HTML) and plots from runs saved by `pytest bench/ --benchmark-autosave`."))
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="saved runs to merge: paths or run numbers such as 0003 (default: the newest, and "
                        "the newest run of each other backend on its device and commit started within 2 hours of it)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--format", default="md,csv", help="comma list of md, csv, html (default: md,csv)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="pytest-benchmark's storage (default: .benchmarks)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    parser.add_argument("--compare", nargs="+", metavar=("BASE", "NEW"),
                        help="compare two runs case by case (NEW defaults to the newest run); the table goes to "
                        "<out>/compare.md, a summary to the terminal")
    parser.add_argument("--fail-above", type=float, metavar="PCT",
                        help="with --compare: exit 1 when a case is slower by more than PCT percent")
    return parser.parse_args(argv)


def _compare(args) -> int:
    if len(args.compare) > 2 or args.runs:
        raise UsageError("--compare takes BASE and at most one NEW run, and no other RUN")
    base = load_run(resolve_ref(args.compare[0], args.storage))
    new = load_run(resolve_ref(args.compare[1], args.storage) if len(args.compare) == 2 else newest_run(args.storage))
    caption, changes, slower = compare(base, new)
    ratio_caption, ratios = compare_ratios(base, new)
    path = os.path.join(args.out, "compare.md")
    atomic_write(path, md_table((caption, HEADERS, as_rows(changes)))
                 + ("\n" + md_table((ratio_caption, RATIO_HEADERS, ratio_rows(ratios))) if ratios else ""))
    print(wrap(terminal_summary(base, new, changes, path, ratios)))
    if args.fail_above is not None:
        over = [(case, pct) for case, pct in slower if pct > args.fail_above]
        if over:
            print(wrap([f"{len(over)} case(s) slower by more than {args.fail_above:g}%: "
                        + ", ".join(f"{c} ({p:.1f}%)" for c, p in over)]), file=sys.stderr)
            return 1
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    formats = [f.strip() for f in args.format.split(",")]
    if not formats or any(f not in FORMATS for f in formats):
        raise UsageError(f"--format takes a comma list of {', '.join(FORMATS)}; got {args.format!r}")
    if args.fail_above is not None and (args.compare is None or args.fail_above < 0):
        raise UsageError("--fail-above takes a percentage of 0 or more and goes with --compare")
    if args.compare:
        return _compare(args)
    if args.runs:
        runs, note = [load_run(resolve_ref(r, args.storage)) for r in args.runs], None
    else:
        runs = [load_run(newest_run(args.storage))]
        runs += [load_run(path) for path in companion_runs(runs[0], args.storage)]
        note = merged_note(runs)
    written = write_report(runs, args.out, formats, with_plots=not args.no_plots, merged_note=note)
    print(summary(runs, written, note))
    return 0


if __name__ == "__main__":
    sys.exit(run("python -m bench.report", main))
