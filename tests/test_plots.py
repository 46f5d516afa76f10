"""Plot labels on a run of the whole zoo: never on each other, on a point, or across another label's leader line."""
import zlib
from types import SimpleNamespace

import pytest

import models
from bench.report import plots
from models.facts import load


def _zoo_run():
    """Every model of the zoo at batch 1, each at its own share of the ceiling (0.3 to 1.0, fixed by its name): the
    spread of a real run, where no two models sit on one point."""
    cases = []
    for name, sizes in load().items():
        facts, share = sizes["default"], 0.3 + 0.7 * (zlib.crc32(name.encode()) % 1000) / 1000
        latency_ms = facts["flops"] / 2e8 / share + facts["layers"] * 0.03
        cases.append({"case": f"{name}-infer-bs1-noxla-float32", "model": name, "family": models.entry(name).family,
                      "device": "CPU (test)", "backend": "tensorflow", "mode": "infer", "precision": "float32",
                      "xla": False, "batch_size": 1, "params": facts["params"], "macs_per_sample": facts["flops"] / 2,
                      "flops_per_step": facts["flops"], "activation_bytes_per_sample": facts["flops"] / 40 * share,
                      "latency_p50_ms": latency_ms, "achieved_tflops": facts["flops"] / latency_ms / 1e9,
                      "throughput": 1e3 / latency_ms})
    machine = {"device": "CPU (test)", "peak_flops_per_s": {"float32": 3e11}, "peak_bandwidth_bytes_per_s": 2e10}
    return SimpleNamespace(name="zoo", machine=machine, cases=cases, scaled=(), noise=None)


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    """The two labelled plots of the zoo run, drawn once and kept as figures."""
    kept, out = {}, str(tmp_path_factory.mktemp("plots"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "_save", lambda fig, out_dir, name, write: kept.setdefault(name, fig) and name)
        run = _zoo_run()
        plots.roofline([run], out, None)
        plots.macs_vs_latency(run.cases, out, None)
    return kept, {c["model"] for c in run.cases}


@pytest.mark.parametrize("name", ["roofline.png", "macs_vs_latency.png"])
def test_labels_keep_apart_at_the_written_size(figures, name):
    kept, names = figures
    fig = kept[name]
    fig.set_dpi(plots.DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_visible() and t.get_text() in names]
    boxes = {id(t): t.get_window_extent(renderer) for t in labels}
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not boxes[id(a)].overlaps(boxes[id(b)]), (a.get_text(), b.get_text())
    points = [xy for collection in ax.collections for xy in ax.transData.transform(collection.get_offsets())]
    for label in labels:
        assert not any(boxes[id(label)].contains(x, y) for x, y in points), label.get_text()
    for arrow in [p for p in ax.patches if getattr(p, "patchA", None) is not None]:
        line = arrow.get_transform().transform(arrow.get_path().vertices)
        for label in labels:
            if label is not arrow.patchA:
                box = boxes[id(label)]
                assert not any(box.contains(x, y) for x, y in line), (label.get_text(), arrow.patchA.get_text())
    assert len(labels) >= 0.5 * len(names), f"{len(labels)} of {len(names)} models labelled"


def test_the_rooflines_dram_traffic_reads_the_weights_and_moves_each_activation():
    from bench.core.traffic import dram_bytes_per_step

    case = {"params": 1_000, "activation_bytes_per_sample": 50, "batch_size": 4, "mode": "infer"}
    assert dram_bytes_per_step(case) == 4 * 1_000 + 2 * 50 * 4  # float32 weights once, activations out and in
    assert dram_bytes_per_step(dict(case, mode="train")) == 3 * 4 * 1_000 + 4 * 50 * 4
    assert dram_bytes_per_step(dict(case, activation_bytes_per_sample=None)) is None  # a record without the counts
