"""The JAX engine, in subprocesses (Keras binds one backend per process, and this one runs TensorFlow): a small
matrix with traces, the training step, the same cost counts as on TensorFlow; and its GPU decisions, in this process,
with a described device."""
import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT, run_bench, tensorboard_serves

from bench.engines.shared import xplane_files

if importlib.util.find_spec("jax") is None:
    if os.environ.get("CNNBENCH_REQUIRE_JAX") == "1":  # CI installs the jax extra: a missing JAX is a failure there
        raise RuntimeError("CNNBENCH_REQUIRE_JAX=1 but jax is not installed (pip install -e '.[jax]')")
    pytest.skip("jax is not installed (pip install -e '.[jax]')", allow_module_level=True)

CASES = {f"{model}-{mode}-bs2-xla-float32" for model in ("lenet5", "resnet20") for mode in ("infer", "train")}


def _on_jax(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests",
                          timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("jax")
    done = run_bench("--backend", "jax", "--models", "lenet5,resnet20", "--mode", "infer,train", "--batch-sizes", "2",
                     "--xla", "on,off", "--precision", "float32", "--case-seconds", "0.3", "--min-rounds", "3",
                     "--scenario", "steps,single-stream",
                     "--benchmark-json", str(out / "run.json"), "--trace-dir", str(out / "traces"), "-k", "test_case",
                     cwd=out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "run.json").read_text()), out / "traces"


@pytest.mark.slow
def test_a_jax_run_measures_its_cases_and_says_why_xla_off_is_not(jax_run):
    run, _ = jax_run
    machine = run["machine_info"]["cnnbench"]
    assert machine["keras_backend"] == "jax" and machine["jax_version"] and "tensorflow_version" not in machine
    infos = {b["extra_info"]["case"]: b["extra_info"] for b in run["benchmarks"]
             if "case" in b["extra_info"] and "serving" not in b["extra_info"]}
    assert set(infos) == CASES
    for info in infos.values():
        assert info["backend"] == "jax" and info["throughput"] > 0 and info["compile_s"] > 0 and info["rounds"] >= 3
        assert info["peak_memory_bytes"] is None and "memory_stats" in info["peak_memory_note"]  # a CPU device
    skipped = {skip["case"]: skip["reason"] for skip in run["cnnbench"]["skipped"]}
    assert set(skipped) == {case.replace("-xla-", "-noxla-") for case in CASES}
    assert all("JAX has no XLA-off setting" in reason for reason in skipped.values())


@pytest.mark.slow
def test_a_jax_run_traces_each_step_where_tensorboard_reads_it(jax_run):
    run, traces = jax_run
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        if "case" not in info or "serving" in info:
            continue
        assert info["trace_dir"] == str(traces / run["cnnbench"]["run_name"] / info["case"])
        assert xplane_files(info["trace_dir"])  # <run>/<case>/plugins/profile/<timestamp>/<host>.xplane.pb
        ops = info["top_ops"]
        assert 0 < len(ops) <= 10 and 0 < sum(op["share"] for op in ops) <= 1.0 + 1e-9
        assert [op["self_time_us"] for op in ops] == sorted((op["self_time_us"] for op in ops), reverse=True)
        assert not any(op["name"].startswith("ThunkExecutor") for op in ops)
    infer = next(b["extra_info"] for b in run["benchmarks"]
                 if b["extra_info"].get("case") == "lenet5-infer-bs2-xla-float32")
    assert any("conv" in op["type"] or "fusion" in op["type"] for op in infer["top_ops"][:3])
    tensorboard_serves(traces, "resnet20-train-bs2-xla-float32")


@pytest.mark.slow
def test_loadgen_serves_the_jax_inference_step_compiled(jax_run):
    run, _ = jax_run
    served = {b["extra_info"]["case"]: b["extra_info"] for b in run["benchmarks"] if "serving" in b["extra_info"]}
    assert set(served) == {f"{model}-infer-bs1-xla-float32-single-stream" for model in ("lenet5", "resnet20")}
    for info in served.values():
        assert info["backend"] == "jax" and info["xla"] is True
        assert info["serving"]["p90_ms"] > 0 and info["serving"]["queries"] >= 64 and info["serving"]["batches"]


@pytest.mark.slow
def test_the_jax_training_step_learns_and_leaves_the_model_readable():
    out = _on_jax("""
import numpy as np, keras, models
from bench.engines import current
engine = current()
keras.utils.set_random_seed(0)
model = models.build("lenet5")
before = [np.array(w) for w in model.get_weights()]
x, y = engine.synthetic_batch(model, 8)
step = engine.training_step(model, xla=True, precision="float32")
losses = [float(step(x, y)[0]) for _ in range(30)]
after = model.get_weights()  # the step donates a copy of the weights, never the model's own
print(engine.NAME, losses[0], losses[-1], max(float(np.abs(a - b).max()) for a, b in zip(before, after)))
""")
    name, first, last, moved = out.split()
    assert name == "jax" and float(last) < 0.9 * float(first) and float(moved) == 0.0  # 2.19 -> 1.73 seen


@pytest.mark.slow
def test_the_cost_model_counts_the_same_on_both_backends(capsys):
    from bench.cost.describe import main as describe_main

    names = ["lenet5", "resnet20", "inception3a", "conv5x5_bottleneck"]
    assert describe_main([*names, "--json"]) == 0
    on_tensorflow = json.loads(capsys.readouterr().out)
    done = subprocess.run([sys.executable, "-m", "bench.describe", *names, "--json"], capture_output=True, text=True,
                          cwd=ROOT / "tests", timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-2000:]
    on_jax = json.loads(done.stdout)
    assert on_jax == on_tensorflow and len(on_jax) == len(names)


@pytest.mark.parametrize("args, message", [
    (["--backend", "jax", "--replicas", "1,2"],
     "--replicas: scaling out runs on TensorFlow's tf.distribute, not on jax"),
    (["--backend", "torch"], "backend 'torch': cnnbench runs on tensorflow, jax"),
])
@pytest.mark.slow
def test_what_a_backend_cannot_do_is_one_line_before_anything_runs(args, message, tmp_path):
    done = run_bench(*args, "--models", "lenet5", "--no-trace", cwd=tmp_path)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and "\n" not in output, output
    assert output.startswith("ERROR: ") and message in output


def test_on_a_described_gpu_jax_finds_its_capability_and_a_peak_only_where_a_case_set_one(monkeypatch):
    import jax

    from bench.engines import jax_engine
    from bench.measure.device import Gpu

    h100 = SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    monkeypatch.setattr(jax, "devices", lambda: [h100])
    found = jax_engine.gpus()
    assert found == [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}]
    assert Gpu(found[0]["name"], tuple(found[0]["compute_capability"])).fast_precisions == (
        "float32", "mixed_float16", "mixed_bfloat16")

    peaks = iter([100, 300, 300, 300])  # the process's peak: JAX cannot reset it
    stats = SimpleNamespace(platform="gpu", memory_stats=lambda: {"peak_bytes_in_use": next(peaks)})
    monkeypatch.setattr(jax, "local_devices", lambda: [stats])
    jax_engine.reset_peak_memory()
    assert jax_engine.peak_memory() == (300, None)  # this case set the peak
    jax_engine.reset_peak_memory()
    assert jax_engine.peak_memory() == (None, "below an earlier case's peak (JAX's peak cannot be reset)")
    monkeypatch.setattr(jax, "local_devices", lambda: [SimpleNamespace(platform="cpu", memory_stats=lambda: None)])
    assert jax_engine.peak_memory() == (None, "JAX's CPU device has no memory_stats")
