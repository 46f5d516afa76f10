"""PNG plots for the report, each readable at the size it is written (about 1,400 px wide, for a browser window):
throughput against batch size by family, what XLA and each mixed precision buy, a roofline per device, and MACs
against latency."""
from __future__ import annotations

import io
import math
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from adjustText import adjust_text  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, ScalarFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from models.registry import natural_key  # noqa: E402

from ..core.records import MODES  # noqa: E402
from ..core.traffic import dram_bytes_per_step  # noqa: E402
from .runtimes import runtime_pairs  # noqa: E402
from .select import KERAS, REFERENCE, in_reference, pairs, runtime_of  # noqa: E402
from .serving import load_curves  # noqa: E402

PLOT_DIR = "plots"
DPI = 110
WIDTH = 13  # inches: 1,430 px
COLORS = plt.get_cmap("tab10").colors
STYLES = ("-", "--", ":", "-.")
SETTING_MARKERS = ("o", "^", "s", "D")  # with STYLES, 16 settings apart (float32/bf16 x XLA x modes x backends)
MARKERS = {"infer": "o", "train": "s"}
RUNTIME_MARKERS = {"litert": "^", "onnxruntime": "D", "openvino": "P"}  # a deployment runtime's inference cases
VERDICT_COLORS = {"faster": "#2a7d2a", "slower": "#b23b3b", "within noise": "#8c8c8c"}


MARKER_PX = 4  # half the width of a scatter point on the written image, and a label's margin


def _segment_hits(box, start, end, samples: int = 24) -> bool:
    return any(box.contains(start[0] + (end[0] - start[0]) * i / samples, start[1] + (end[1] - start[1]) * i / samples)
               for i in range(samples + 1))


def place_labels(ax, labels, points, all_points) -> list:
    """Labels moved apart by adjustText; then, in the order given (the most important first), a label that still
    touches a label kept before it, a point, or a kept label's leader line is tried beside its point instead, and
    hidden if it fits nowhere there: a crowded plot labels fewer points, never on top of each other or of a point.
    `labels[i]` names `points[i]`; returns the labels kept."""
    xs, ys = zip(*all_points)
    _, arrows = adjust_text(labels, x=list(xs), y=list(ys), ax=ax, expand=(1.2, 1.4), force_static=(0.3, 0.5),
                            arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.5}) or ([], [])
    arrow_of = {id(getattr(arrow, "patchA", None)): arrow for arrow in arrows}
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    to_px, to_data = ax.transData.transform, ax.transData.inverted().transform
    dots = [Bbox.from_bounds(x - MARKER_PX, y - MARKER_PX, 2 * MARKER_PX, 2 * MARKER_PX) for x, y in to_px(all_points)]
    frame = ax.get_window_extent(renderer)
    kept, boxes, leaders = [], [], []

    def clashes(box, leader) -> bool:
        return (not frame.contains(box.x0, box.y0) or not frame.contains(box.x1, box.y1)
                or any(box.overlaps(other) for other in boxes + dots)
                or any(_segment_hits(box, *line) for line in leaders)
                or (leader is not None and any(_segment_hits(other, *leader) for other in boxes)))

    for label, point in zip(labels, points):
        box = label.get_window_extent(renderer).padded(2)
        leader = (to_px(label.get_position()), to_px(point)) if id(label) in arrow_of else None
        if clashes(box, leader):
            if id(label) in arrow_of:
                arrow_of.pop(id(label)).remove()
            leader, (px, py) = None, to_px(point)
            half_w, half_h = box.width / 2 + MARKER_PX + 1, box.height / 2 + MARKER_PX + 1  # overlaps() counts touching
            beside = [(half_w, 0), (-half_w, 0), (0, half_h), (0, -half_h),
                      (half_w, half_h), (-half_w, half_h), (half_w, -half_h), (-half_w, -half_h)]
            for dx, dy in beside:
                box = Bbox.from_bounds(px + dx - box.width / 2, py + dy - box.height / 2, box.width, box.height)
                if not clashes(box, None):
                    label.set(position=to_data((px + dx, py + dy)), ha="center", va="center")
                    break
            else:
                label.set_visible(False)
                continue
        kept.append(label)
        boxes.append(box)
        if leader is not None:
            leaders.append(leader)
    return kept


def _save(fig, out_dir, name, write) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    path = f"{PLOT_DIR}/{name}"
    write(f"{out_dir}/{path}", buffer.getvalue())
    return path


def _setting(case) -> str:
    backend = case.get("backend") or "tensorflow"
    if runtime_of(case) != KERAS:
        return f"{MODES[case['mode']]}, {case['runtime_label']}, {case['precision']}"
    return (f"{MODES[case['mode']]}, {case['precision']}" + (", XLA" if case["xla"] else "")
            + ("" if backend == "tensorflow" else f", {backend}"))


PLAIN = FuncFormatter(lambda value, _: f"{value:,.4g}")  # 60, not 6x10^1
# over more than a decade, only the 2s and 5s of the minor ticks: every one of them crowded the labels
TWOS_AND_FIVES = FuncFormatter(lambda value, _: f"{value:,.4g}" if value > 0 and round(
    value / 10 ** math.floor(math.log10(value))) in (2, 5) else "")


def _plain_log(ax, axis: str = "y") -> None:
    """Call after plotting: minor ticks are labelled only within a decade, where there is room for them."""
    getattr(ax, f"set_{axis}scale")("log")
    scale = getattr(ax, f"{axis}axis")
    scale.set_major_formatter(PLAIN)
    low, high = getattr(ax, f"get_{axis}lim")()
    scale.set_minor_formatter(PLAIN if high / low < 10 else TWOS_AND_FIVES)
    ax.tick_params(axis=axis, which="minor", labelsize=7)


def _batch_axis(ax, batches) -> None:
    """Log2 batch axis ticked at the batch sizes measured, as plain numbers."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(batches)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())


def _setting_style(index: int) -> tuple[str, str]:
    return STYLES[index % len(STYLES)], SETTING_MARKERS[index // len(STYLES) % len(SETTING_MARKERS)]


def throughput_by_family(cases, out_dir, write):
    """Small multiples: a panel per family, a line per model and setting, only where a setting has two or more
    batch sizes (a single point says nothing about scaling)."""
    series = defaultdict(list)
    for c in cases:
        if c.get("throughput"):
            series[(c["device"], c["family"], c["model"], _setting(c))].append((c["batch_size"], c["throughput"]))
    series = {key: sorted(points) for key, points in series.items() if len(points) > 1}
    if not series:
        return None
    multi_device = len({key[0] for key in series}) > 1
    panels = sorted({key[:2] for key in series})
    settings = sorted({key[3] for key in series}, key=lambda s: (not s.startswith("inference"), s))
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH, 3.4 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax, (device, family) in zip(axes.flat, panels):
        models = sorted({key[2] for key in series if key[:2] == (device, family)}, key=natural_key)
        batches = set()
        for (d, f, model, setting), points in sorted(series.items()):
            if (d, f) != (device, family):
                continue
            batches.update(b for b, _ in points)
            linestyle, marker = _setting_style(settings.index(setting))
            ax.plot(*zip(*points), linestyle, color=COLORS[models.index(model) % len(COLORS)], marker=marker,
                    markersize=4)
        _batch_axis(ax, batches)
        _plain_log(ax)
        ax.set(xlabel="batch size", ylabel="samples/s", title=f"{family} ({device})" if multi_device else family)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend([Line2D([], [], color=COLORS[i % len(COLORS)]) for i in range(len(models))], models,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.legend([Line2D([], [], color="black", linestyle=_setting_style(i)[0], marker=_setting_style(i)[1],
                       markersize=4) for i in range(len(settings))],
               settings, loc="outside lower center", ncols=min(4, len(settings)), frameon=False,
               title="line style and marker: setting")
    fig.suptitle("Throughput against batch size, by family")
    return _save(fig, out_dir, "throughput.png", write)


def _one_per_model(found):
    """A pair per model and mode: the largest batch measured both ways, in the reference settings where held."""
    chosen = {}
    for pair in found:
        c = pair.new
        key = (c["device"], c["model"], c["mode"], runtime_of(c))
        rank = (sum(c[k] == v for k, v in REFERENCE.items() if k not in ("mode", "runtime")), c["batch_size"])
        if key not in chosen or rank > chosen[key][0]:
            chosen[key] = (rank, pair)
    return [pair for _, pair in chosen.values()]


def speedup_chart(runs, vary, base_value, new_value, title, name, out_dir, write, found=None):
    """A bar per model (its largest batch measured both ways), sorted, with the noise band as an error bar; or a
    bar per pair of `found`."""
    found = found if found is not None else _one_per_model(pairs(runs, vary, base_value, new_value))
    if not found:
        return None
    modes = [m for m in MODES if any(p.new["mode"] == m for p in found)]
    multi_device = len({p.new["device"] for p in found}) > 1
    height = max(len([p for p in found if p.new["mode"] == m]) for m in modes)
    fig, axes = plt.subplots(1, len(modes), figsize=(WIDTH, 0.24 * height + 1.6), squeeze=False,
                             layout="constrained")
    for ax, mode in zip(axes[0], modes):
        bars = sorted((p for p in found if p.new["mode"] == mode), key=lambda p: p.ratio)
        y = range(len(bars))
        low = [p.ratio - p.low if math.isfinite(p.band) else 0 for p in bars]  # the verdict's 99% interval
        high = [p.high - p.ratio if math.isfinite(p.band) else 0 for p in bars]
        ax.barh(list(y), [p.ratio - 1 for p in bars], left=1, xerr=[low, high], height=0.7,
                color=[VERDICT_COLORS[p.word] for p in bars], error_kw={"elinewidth": 0.8, "capsize": 2})
        ax.set_yticks(list(y), [p.label + (f" ({p.new['device']})" if multi_device else "") + ("" if p.paired else " †")
                                for p in bars], fontsize=8)
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set(xlabel="throughput ratio (1 = no change)", title=MODES[mode])
        _plain_log(ax, "x")
        ax.grid(True, axis="x", alpha=0.3)
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLORS.values()], list(VERDICT_COLORS),
               loc="outside lower center", ncols=3, frameon=False,
               title="verdict at 99%: bars from rounds timed side by side, or (†) from two cases minutes apart")
    fig.suptitle(title)
    return _save(fig, out_dir, name, write)


def roofline(runs, out_dir, write):
    devices = defaultdict(lambda: {"cases": [], "peaks": {}, "bandwidth": None})
    for run in runs:
        device = devices[run.machine.get("device", "-")]
        device["peaks"].update(run.machine.get("peak_flops_per_s") or {})
        device["bandwidth"] = device["bandwidth"] or run.machine.get("peak_bandwidth_bytes_per_s")
        device["cases"].extend(c for c in run.cases if c.get("achieved_tflops") and dram_bytes_per_step(c))
    devices = {name: d for name, d in devices.items() if d["cases"] and d["peaks"] and d["bandwidth"]}
    if not devices:
        return None
    fig, axes = plt.subplots(1, len(devices), figsize=(WIDTH, 7), squeeze=False, layout="constrained")
    for ax, (name, device) in zip(axes[0], sorted(devices.items())):
        precisions = sorted({c["precision"] for c in device["cases"]}, key=lambda p: p != "float32")
        intensity = {id(c): c["flops_per_step"] / dram_bytes_per_step(c) for c in device["cases"]}
        x = [min(intensity.values()) / 2, max(intensity.values()) * 2]
        grid = [x[0] * (x[1] / x[0]) ** (i / 200) for i in range(201)]
        for i, precision in enumerate(precisions):
            peak = device["peaks"].get(precision)
            if peak:
                ax.plot(grid, [min(peak, g * device["bandwidth"]) for g in grid], color=COLORS[i], linewidth=1.5,
                        label=f"roof, {precision}: {peak / 1e12:.3g} TFLOP/s, {device['bandwidth'] / 1e9:.0f} GB/s")
        labelled = {}
        for c in device["cases"]:  # each model's reference case at its largest batch is labelled
            if in_reference(c) and (
                    c["model"] not in labelled or c["batch_size"] > labelled[c["model"]]["batch_size"]):
                labelled[c["model"]] = c
        points = {}
        for c in device["cases"]:
            points[id(c)] = (intensity[id(c)], c["achieved_tflops"] * 1e12)
            marker = MARKERS[c["mode"]] if runtime_of(c) == KERAS else RUNTIME_MARKERS.get(runtime_of(c), "*")
            ax.scatter(*points[id(c)], s=16 if runtime_of(c) == KERAS else 24, marker=marker,
                       color=COLORS[precisions.index(c["precision"])], alpha=0.55, linewidths=0)
        ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOPs per byte of estimated DRAM traffic)",
               ylabel="achieved FLOP/s", title=name)
        ax.grid(True, which="major", alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        handles += [Line2D([], [], marker=m, linestyle="", color="gray") for m in MARKERS.values()]
        names += [f"{MODES[mode]} case" for mode in MARKERS]
        shown = {runtime_of(c): c["runtime_label"] for c in device["cases"] if runtime_of(c) != KERAS}
        handles += [Line2D([], [], marker=RUNTIME_MARKERS.get(r, "*"), linestyle="", color="gray") for r in shown]
        names += [f"{label} (inference)" for label in shown.values()]
        handles += [Line2D([], [], marker="o", linestyle="", color=COLORS[i]) for i in range(len(precisions))]
        names += precisions
        ax.legend(handles, names, loc="lower right", fontsize=8)
        first = sorted(labelled.values(), key=lambda c: -c["achieved_tflops"])  # the fastest keep their labels
        place_labels(ax, [ax.text(*points[id(c)], c["model"], fontsize=7) for c in first],
                     [points[id(c)] for c in first], list(points.values()))
    fig.suptitle("Roofline: each case at its arithmetic intensity and achieved FLOP/s under the measured ceilings "
                 "(labels: inference, float32, largest batch)")
    return _save(fig, out_dir, "roofline.png", write)


def macs_vs_latency(cases, out_dir, write):
    chosen = {}
    for c in cases:  # a point per model: the smallest batch of inference, float32, XLA off where present
        key = (c["mode"] != "infer", runtime_of(c) != KERAS, c["precision"] != "float32", c["xla"], c["batch_size"])
        if c.get("macs_per_sample") and c.get("latency_p50_ms") and (
                (c["device"], c["model"]) not in chosen or key < chosen[(c["device"], c["model"])][0]):
            chosen[(c["device"], c["model"])] = (key, c)
    if not chosen:
        return None
    families = sorted({c["family"] for _, c in chosen.values()})
    fig, ax = plt.subplots(figsize=(WIDTH, 7.5), layout="constrained")
    points = {}
    for (_, model), (_, c) in sorted(chosen.items()):
        points[model] = (c["macs_per_sample"] * c["batch_size"], c["latency_p50_ms"])
        ax.scatter(*points[model], s=22, color=COLORS[families.index(c["family"]) % len(COLORS)])
    ax.set(xscale="log", yscale="log", xlabel="MACs per step", ylabel="median latency (ms)",
           title="MACs against measured latency (each model's smallest inference case, float32, XLA off)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend([Line2D([], [], marker="o", linestyle="", color=COLORS[i % len(COLORS)]) for i in range(len(families))],
              families, loc="upper left", fontsize=8, title="family")
    first = sorted(points, key=lambda model: -points[model][0])  # the costliest keep their labels
    place_labels(ax, [ax.text(*points[m], m, fontsize=8) for m in first], [points[m] for m in first],
                 list(points.values()))
    return _save(fig, out_dir, "macs_vs_latency.png", write)


def scaling_chart(runs, out_dir, write):
    """Speed-up over one replica against replicas (or workers), a line per case, beside the ideal."""
    lines = []
    for run in runs:
        for case in run.scaled:
            result = case.get("scaling")
            if result:
                lines.append((case, result))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 6), layout="constrained")
    counts = sorted({1} | {case.get("replicas") or 1 for case, _ in lines})
    ax.plot(counts, counts, color="gray", linestyle="--", label="ideal (efficiency 1)")
    for index, (case, result) in enumerate(sorted(lines, key=lambda item: natural_key(item[0]["case"]))):
        replicas = case.get("replicas") or 1
        error = (result["error"] or 0) * replicas
        where = f"{case['workers']} workers" if (case.get("workers") or 1) > 1 else "replicas"
        ax.errorbar([1, replicas], [1, result["speedup"]], yerr=[0, error], marker=MARKERS.get(case["mode"], "o"),
                    color=COLORS[index % len(COLORS)], capsize=3,
                    label=f"{case['model']}, {_setting(case)}, bs {case['batch_size']}/replica ({where}): "
                          f"efficiency {result['efficiency']:.2f}")
    ax.set(xlabel="replicas (in all workers)", ylabel="global throughput over one replica's",
           title="Scaling: speed-up over one replica, with its 95% interval")
    ax.xaxis.set_major_locator(FixedLocator(counts))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _save(fig, out_dir, "scaling.png", write)


def latency_against_load(runs, out_dir, write):
    """LoadGen's Server trials: p99 latency against the offered rate, a line per model and engine, the bound
    dashed; hollow points are trials LoadGen judged INVALID (short search trials, or over the bound)."""
    curves = load_curves(runs)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 6.5), layout="constrained")
    bounds = set()
    for index, (label, points) in enumerate(curves):
        color = COLORS[index % len(COLORS)]
        qps, p99 = [p[0] for p in points], [p[1] for p in points]
        ax.plot(qps, p99, color=color, linestyle=STYLES[(index // len(COLORS)) % len(STYLES)], label=label)
        ax.scatter(qps, p99, s=28, color=color, facecolors=[color if valid else "none" for *_, valid in points])
    for run in runs:
        for case in run.serving:
            bound = (case.get("serving") or {}).get("bound_ms")
            if case.get("scenario") == "server" and bound:
                bounds.add(round(bound, 3))
    for bound in sorted(bounds):
        ax.axhline(bound, color="gray", linestyle="--", linewidth=0.8)
        ax.annotate(f"bound {bound:g} ms", (1, bound), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=8, color="gray")
    ax.set(xscale="log", yscale="log", xlabel="offered queries/s (Poisson)", ylabel="p99 latency (ms)",
           title="Latency against load (LoadGen Server trials; filled: VALID)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out_dir, "latency_against_load.png", write)


def write_plots(runs, out_dir: str, write) -> list[tuple[str, str]]:
    """[(title, path relative to out_dir)]; `write(path, bytes)` stores a file (atomically)."""
    cases = [c for r in runs for c in r.cases]
    if not cases:
        load = latency_against_load(runs, out_dir, write)
        return [("Latency against load", load)] if load else []
    precisions = sorted({c["precision"] for c in cases} - {"float32"})
    plots = [("Throughput against batch size, by family", throughput_by_family(cases, out_dir, write)),
             ("What XLA buys", speedup_chart(runs, "xla", False, True, "What XLA buys: throughput with XLA over "
                                             "without, a bar per model at its largest batch measured both ways",
                                             "speedup_xla.png", out_dir, write)),
             *((f"What {p} buys", speedup_chart(runs, "precision", "float32", p, f"What {p} buys: throughput over "
                                                "float32, a bar per model at its largest batch measured both ways",
                                                f"speedup_{p}.png", out_dir, write)) for p in precisions),
             ("What each runtime buys", speedup_chart(
                 runs, "runtime", KERAS, None, "What each runtime buys: throughput over TensorFlow's (float32, XLA "
                 "off), at batch 1", "speedup_runtimes.png", out_dir, write,
                 found=[p for p in runtime_pairs(runs) if p.new["batch_size"] == 1])),
             ("Roofline", roofline(runs, out_dir, write)),
             ("MACs against measured latency", macs_vs_latency(cases, out_dir, write)),
             ("Scaling", scaling_chart(runs, out_dir, write)),
             ("Latency against load", latency_against_load(runs, out_dir, write))]
    return [(title, path) for title, path in plots if path]
