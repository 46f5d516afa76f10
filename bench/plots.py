"""PNG plots for the report: throughput and latency against batch size, MACs against latency."""
from __future__ import annotations

import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

PLOT_DIR = "plots"


def _series(cases, value):
    """{(model, setting): [(batch, value)]} for the cases that measured it, with more than one batch size."""
    series = defaultdict(list)
    for c in cases:
        if c.get(value) is not None:
            setting = f"{c['mode']}, {c['precision']}, XLA {'on' if c['xla'] else 'off'}"
            series[(c["model"], c["device"], setting)].append((c["batch_size"], c[value]))
    return {k: sorted(v) for k, v in series.items()}


def _save(fig, out_dir, name, write) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    path = f"{PLOT_DIR}/{name}"
    write(f"{out_dir}/{path}", buffer.getvalue())
    return path


def _by_batch(cases, values, ylabel, title, out_dir, name, write):
    settings = sorted({k[2] for v in values for k in _series(cases, v)})
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings), 4.5), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for value, style in zip(values, ("-o", "--x")):
            for (model, device, s), points in sorted(_series(cases, value).items()):
                if s == setting:
                    ax.plot(*zip(*points), style, label=f"{model} {value.split('_')[1] if '_' in value else ''}".strip())
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel=ylabel, title=setting)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    return _save(fig, out_dir, name, write)


def _macs_vs_latency(cases, out_dir, write):
    chosen = {}
    for c in cases:  # one point a model: the smallest batch of inference, float32, XLA off where present
        key = (c["mode"] != "infer", c["precision"] != "float32", c["xla"], c["batch_size"])
        if c.get("macs_per_sample") and c.get("latency_p50_ms") and (
                c["model"] not in chosen or key < chosen[c["model"]][0]):
            chosen[c["model"]] = (key, c)
    fig, ax = plt.subplots(figsize=(7, 5))
    for model, (_, c) in sorted(chosen.items()):
        ax.scatter(c["macs_per_sample"] * c["batch_size"], c["latency_p50_ms"], s=14)
        ax.annotate(model, (c["macs_per_sample"] * c["batch_size"], c["latency_p50_ms"]), fontsize=6)
    ax.set(xscale="log", yscale="log", xlabel="MACs per step", ylabel="median latency (ms)",
           title="MACs against measured latency (each model's smallest inference case)")
    return _save(fig, out_dir, "macs_vs_latency.png", write)


def write_plots(cases, out_dir: str, write) -> list[tuple[str, str]]:
    """[(title, path relative to out_dir)]; `write(path, bytes)` stores a file (atomically)."""
    if not cases:
        return []
    return [
        ("Throughput against batch size", _by_batch(cases, ("throughput",), "samples/s",
                                                    "Throughput against batch size", out_dir, "throughput.png", write)),
        ("Latency p50 and p99 against batch size", _by_batch(cases, ("latency_p50_ms", "latency_p99_ms"), "ms per step",
                                                             "Latency p50 (solid) and p99 (dashed)", out_dir,
                                                             "latency.png", write)),
        ("MACs against measured latency", _macs_vs_latency(cases, out_dir, write)),
    ]
