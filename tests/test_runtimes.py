"""The deployment runtimes (LiteRT, ONNX Runtime, OpenVINO): Keras's exports, their cache, the sessions and their
profiles; a real run beside TensorFlow, run again on the cached exports, and its report; the matrix, the plan and
bad input. Without the deploy extra these are skipped, unless CNNBENCH_REQUIRE_DEPLOY is set (as .ci/run sets it)."""
import importlib.util
import json
import os
import re
from dataclasses import replace

import numpy as np
import pytest
from conftest import run_bench

import models
from bench.engines import runtimes
from bench.engines.runtimes import exports
from bench.measure import plan
from bench.measure.harness import RUNTIME_ON_JAX, Harness, reference_twins, unsupported
from bench.measure.matrix import Case, Matrix, resolve
from bench.measure.planning import make_planner
from bench.measure.timing import Budget
from bench.report.render import md_table
from bench.report.runs import load_run
from bench.report.runtimes import ASTRAY
from bench.report.tables import tables

MISSING = [name for name in runtimes.RUNTIMES if runtimes.missing(name)]
if MISSING:
    if os.environ.get("CNNBENCH_REQUIRE_DEPLOY"):
        raise RuntimeError(f"CNNBENCH_REQUIRE_DEPLOY is set but {', '.join(MISSING)} is not installed "
                           "(pip install -e '.[deploy]')")
    pytest.skip(f"{', '.join(MISSING)} not installed (pip install -e '.[deploy]')", allow_module_level=True)

RUNTIME_CASES = {f"lenet5-infer-bs1-{runtime}-{precision}" for runtime in runtimes.RUNTIMES
                 for precision in runtimes.PRECISIONS}


@pytest.fixture(scope="module")
def lenet5():
    return models.build("lenet5", input_shape=models.input_shape("lenet5", "default"))


@pytest.mark.parametrize("name", runtimes.RUNTIMES)
def test_each_runtime_serves_keras_own_export_and_agrees_with_keras(name, lenet5, tmp_path):
    runtime = runtimes.module(name)
    made = exports.make(str(tmp_path), runtime, lenet5, "lenet5", "default", "float32")
    assert not made.cached and made.seconds > 0 and made.size_bytes > 0 and os.path.exists(made.path)
    step = runtimes.RuntimeStep(runtime, made.path, threads=2)
    out = step(made.reference_input)
    assert out.shape == made.reference_output.shape
    # OpenVINO runs bf16 where the CPU has it (its own choice): agreement to bf16's 8 bits, else to float32's
    tolerance = 3e-2 if step.session.executed_precision == "bfloat16" else 1e-4
    assert exports.relative_error(out, made.reference_output) < tolerance
    assert step(made.reference_input[:1]).shape[0] == 1  # another batch size on the same session (LiteRT resizes)

    quantized = exports.make(str(tmp_path), runtime, lenet5, "lenet5", "default", "int8")
    int8 = runtimes.RuntimeStep(runtime, quantized.path, threads=2)
    error = exports.relative_error(int8(quantized.reference_input), quantized.reference_output)
    assert int8.session.executed_precision.startswith("int8")
    # int8 costs some agreement, not all of it: below the report's line for an export that computes something else
    # (LeNet-5 with random weights, 8 draws: LiteRT 0.013-0.027, ONNX Runtime and OpenVINO 0.04-0.20; 0.22 once in CI)
    assert quantized.size_bytes < made.size_bytes and 0 < error < ASTRAY


def test_an_export_is_made_once_for_its_versions_and_never_left_half_made(lenet5, tmp_path):
    runtime = runtimes.module("onnxruntime")
    first = exports.make(str(tmp_path), runtime, lenet5, "lenet5", "default", "float32")
    again = exports.make(str(tmp_path), runtime, lenet5, "lenet5", "default", "float32")
    assert again.cached and again.path == first.path and again.seconds == first.seconds
    np.testing.assert_array_equal(again.reference_output, first.reference_output)

    class Broken:  # a converter that fails half-way, under other versions
        NAME, FILE, QUANTIZES_EXPORT = runtime.NAME, runtime.FILE, False
        versions = staticmethod(lambda: {"onnxruntime": "0.0"})

        @staticmethod
        def export(model, path, precision, calibration, float32=None):
            open(path, "w").write("half")
            raise RuntimeError("converter failed\nwith a long story")

    assert exports.find(str(tmp_path), Broken, "lenet5", "default", "float32") is None  # other versions: not cached
    with pytest.raises(RuntimeError):
        exports.make(str(tmp_path), Broken, lenet5, "lenet5", "default", "float32")
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(os.path.dirname(first.path))]


@pytest.mark.slow
def test_a_converter_that_kills_itself_costs_its_case_with_the_reason_and_the_run_goes_on(tmp_path, monkeypatch):
    """The export runs in a child process: its converter's SIGKILL (what the kernel does to a process out of memory)
    ends the child, not the run, which skips the case with the reason and skips its other cases at once."""
    here = os.path.dirname(os.path.abspath(__file__))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH")))))
    monkeypatch.syspath_prepend(here)
    killer = importlib.import_module("killing_runtime")
    monkeypatch.setattr(runtimes, "module", lambda name: killer)
    harness = Harness(Matrix(("lenet5",)), Budget(), export_root=str(tmp_path))
    case = Case("lenet5", "infer", 1, False, "float32", runtime="litert")
    reason = "Killer export failed: its process was killed by SIGKILL (out of memory?)"
    with pytest.raises(pytest.skip.Exception, match=re.escape(reason)):
        harness.export(case)
    assert harness.skipped[-1]["case"] == case.id and harness.skipped[-1]["reason"] == reason
    with pytest.raises(pytest.skip.Exception, match=re.escape(reason)):  # the model's other cases: no second try
        harness.export(replace(case, batch_size=8))
    assert os.listdir(tmp_path) == []  # nothing half-made left behind: the killed child's staging folder is gone


def test_onnx_exports_refuse_a_model_too_big_for_tf2onnx_in_memory(tmp_path):
    class Big:  # what VGG-16 is to the converter: 138 M parameters (it was OOM-killed at 24 GB)
        input_shape = (None, 8, 8, 3)

        @staticmethod
        def count_params():
            return 138_357_544

        def __call__(self, x, training=False):
            return np.zeros((len(x), 2), np.float32)

    with pytest.raises(MemoryError, match="above 100 M parameters"):
        exports.make(str(tmp_path), runtimes.module("onnxruntime"), Big(), "vgg16", "default", "float32")
    assert os.listdir(tmp_path) == []
    onnx = runtimes.module("onnxruntime")  # one reason for every model refused: the report counts them as one
    assert onnx.refuses(133_000_000) == onnx.refuses(144_000_000) and onnx.refuses(62_000_000) is None


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_runtimes_with_a_profiler_say_where_the_time_goes(name, lenet5, tmp_path):
    runtime = runtimes.module(name)
    made = exports.make(str(tmp_path / "cache"), runtime, lenet5, "lenet5", "default", "float32")
    (tmp_path / "profile").mkdir()
    rows = runtime.profile(made.path, 2, made.reference_input[:1], 3, str(tmp_path / "profile"))
    assert rows and all(total >= 0 for _, _, total in rows)
    assert any("conv" in (name + kind).lower() for name, kind, _ in rows)  # LeNet-5's convolutions are in it
    assert os.listdir(tmp_path / "profile")  # the runtime's own file, for Perfetto or by hand


@pytest.fixture(scope="module")
def runtime_runs(tmp_path_factory):
    """A run of LeNet-5 on every runtime beside TensorFlow, then the same again on the cached exports."""
    out = tmp_path_factory.mktemp("runtimes")
    args = ("--models", "lenet5", "--runtime", "keras,litert,onnxruntime,openvino", "--batch-sizes", "1",
            "--mode", "infer", "--precision", "float32,int8", "--case-seconds", "0.5", "--min-rounds", "3",
            "--trace-dir", str(out / "traces"), "-k", "test_case", "--export-cache", str(out / "exports"),
            "--scenario", "steps")
    found = []
    for name in ("first", "second"):
        done = run_bench(*args, "--benchmark-json", str(out / f"{name}.json"), cwd=out)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        found.append(json.loads((out / f"{name}.json").read_text()))
    return found, out


def _infos(run):
    return {b["extra_info"]["case"]: b["extra_info"] for b in run["benchmarks"] if "case" in b["extra_info"]}


@pytest.mark.slow
def test_a_run_measures_each_runtime_beside_tensorflow_and_records_what_it_ran(runtime_runs):
    (first, second), out = runtime_runs
    infos = _infos(first)
    assert RUNTIME_CASES <= set(infos), sorted(infos)
    for case in RUNTIME_CASES:
        info = infos[case]
        assert info["runtime"] in runtimes.RUNTIMES and info["threads"] == runtimes.threads()
        assert info["xla"] is False and info["executed_precision"]
        assert not info["export"]["cached"] and info["export"]["size_bytes"] > 0
        error = info["fidelity"]["max_relative_error"]
        if info["precision"] == "int8":
            assert 0 < error < ASTRAY, case
        else:  # OpenVINO runs bf16 where the CPU has it: agreement to bf16's 8 bits, else to float32's
            assert 0 <= error < (3e-2 if info["executed_precision"] == "bfloat16" else 1e-4), case
        against = {p["against"] for p in info["paired"]}
        assert "lenet5-infer-bs1-noxla-float32" in against  # timed round by round beside TensorFlow's step
        if info["precision"] == "int8":
            assert f"lenet5-infer-bs1-{info['runtime']}-float32" in against
        assert info["estimate_s"]["planned"] > 0 and info["estimate_s"]["measured"] > 0
    assert infos["lenet5-infer-bs1-noxla-float32"]["runtime"] == "keras"
    for runtime in ("onnxruntime", "openvino"):
        info = infos[f"lenet5-infer-bs1-{runtime}-float32"]
        assert info["top_ops"] and os.listdir(info["trace_dir"])
    assert infos["lenet5-infer-bs1-litert-float32"]["profile_note"]
    for case, info in _infos(second).items():  # the second run exports nothing
        if case in RUNTIME_CASES:
            assert info["export"]["cached"] and info["time_s"].get("export", 0) < 1.0, (case, info["time_s"])


@pytest.mark.slow
def test_the_report_shows_what_each_runtime_buys_with_exports_and_fidelity(runtime_runs, tmp_path):
    import subprocess
    import sys

    (first, _), out = runtime_runs
    (tmp_path / "store" / "run").mkdir(parents=True)
    (tmp_path / "store" / "run" / "0001_run.json").write_text(json.dumps(first))
    done = subprocess.run([sys.executable, "-m", "bench.report", "--storage", str(tmp_path / "store"), "--out",
                           str(tmp_path / "out"), "--no-plots"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**What each runtime buys over TensorFlow**" in report
    for caption in ("*What each runtime buys over TensorFlow:", "*How the time budget's estimates held"):
        assert caption in report, caption
    grid = report[report.index("*What each runtime buys over TensorFlow:"):].split("\n\n")[1]
    header, _, *rows = grid.splitlines()
    for label in ("LiteRT", "ONNX Runtime", "OpenVINO"):
        assert f"{label} int8 bs1" in header and f"{label} f32 bs1" in header, label  # a column each
    assert len([row for row in rows if row.startswith("| lenet5 ")]) == 1 and "fastest at bs 1" in header
    saved = load_run(str(tmp_path / "store" / "run" / "0001_run.json"))
    every = "\n".join(md_table(table) for table in tables([saved])[1])
    for caption in ("*The fastest runtime per model at batch 1", "*Exports (Keras's model.export) and fidelity"):
        assert caption in every, caption
    for label in ("LiteRT", "ONNX Runtime", "OpenVINO"):
        assert re.search(rf"\| lenet5 +\| 1 +\| {label} +\| int8", every), label  # its row, in int8 too
        assert (f"| lenet5 ({label})" in every) is (label != "LiteRT")  # top ops where the runtime has a profiler


def test_runtime_cases_follow_their_model_s_keras_cases_and_pair_with_tensorflow_s():
    matrix = resolve({"models": "lenet5", "runtime": "keras,onnxruntime", "mode": "infer", "scenario": "steps"},
                     gpu=None, installed_runtimes=runtimes.RUNTIMES)
    ids = [case.id for case in matrix.cases()]
    assert ids[-2:] == ["lenet5-infer-bs1-onnxruntime-float32", "lenet5-infer-bs1-onnxruntime-int8"]  # batch 1
    assert "lenet5-infer-bs8-noxla-float32" in ids
    sized = resolve({"models": "lenet5", "runtime": "keras,onnxruntime", "mode": "infer", "batch_sizes": "1,8",
                     "scenario": "steps"}, gpu=None, installed_runtimes=runtimes.RUNTIMES)
    assert [c.id for c in sized.cases()][-4:] == [
        "lenet5-infer-bs1-onnxruntime-float32", "lenet5-infer-bs8-onnxruntime-float32",
        "lenet5-infer-bs1-onnxruntime-int8", "lenet5-infer-bs8-onnxruntime-int8"]
    int8 = sized.cases()[-1]
    assert [t.id for t in reference_twins(int8)] == ["lenet5-infer-bs8-noxla-float32",
                                                     "lenet5-infer-bs8-onnxruntime-float32"]
    only = resolve({"models": "lenet5", "runtime": "litert", "precision": "int8"}, gpu=None,
                   installed_runtimes=runtimes.RUNTIMES)
    assert [c.id for c in only.cases()] == ["lenet5-infer-bs1-litert-int8"]  # no Keras case: none in int8


def test_the_cpu_default_run_adds_the_installed_runtimes_at_batch_1_only():
    cpu = resolve({"models": "lenet5"}, gpu=None, installed_runtimes=runtimes.RUNTIMES,
                  default_runtimes=("onnxruntime",))
    assert {c.id for c in cpu.cases() if c.runtime != "keras"} == {"lenet5-infer-bs1-onnxruntime-float32",
                                                                   "lenet5-infer-bs1-onnxruntime-int8"}
    gpu = resolve({"models": "lenet5"}, gpu=object(), installed_runtimes=runtimes.RUNTIMES,
                  default_runtimes=("onnxruntime",))
    assert all(c.runtime == "keras" for c in gpu.cases())
    smoke = resolve({"preset": "smoke"}, gpu=None, installed_runtimes=runtimes.RUNTIMES,
                    default_runtimes=("onnxruntime",))
    assert all(c.runtime == "keras" for c in smoke.cases())


@pytest.mark.parametrize("options, message", [
    ({"runtime": "tensorrt"}, "--runtime takes keras, litert, onnxruntime, openvino; got 'tensorrt'"),
    ({"runtime": "keras,openvino"}, "--runtime openvino: not installed (the deploy extra: pip install -e '.[deploy]')"),
])
def test_bad_runtimes_are_one_line(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
                       .replace("[", r"\[").replace("]", r"\]")):
        resolve({"models": "lenet5", **options}, gpu=None, installed_runtimes=("litert",))


def test_on_jax_runtime_cases_are_skipped_with_the_reason(monkeypatch):
    from bench.engines import jax_engine, tensorflow_engine

    case = Case("lenet5", "infer", 1, False, "float32", runtime="onnxruntime")
    monkeypatch.setattr("bench.measure.harness.engine", lambda: jax_engine if importlib.util.find_spec("jax")
                        else type("Jax", (), {"NAME": "jax"}))
    assert unsupported(case) == RUNTIME_ON_JAX
    monkeypatch.setattr("bench.measure.harness.engine", lambda: tensorflow_engine)
    assert unsupported(case) is None
    # and a model too big for the converter is skipped before the plan counts it
    vgg16 = replace(case, model="vgg16")
    assert "above 100 M parameters" in unsupported(vgg16)
    assert unsupported(replace(vgg16, runtime="openvino")) is None


def test_the_plan_puts_one_runtime_with_the_mission_the_others_after_and_long_exports_last(tmp_path, monkeypatch):
    ceilings = {"float32": 218e9, "mixed_bfloat16": 447e9}
    matrix = resolve({"models": "lenet5,vgg16"}, gpu=None, installed_runtimes=runtimes.RUNTIMES,
                     default_runtimes=("onnxruntime", "litert"))
    matrix = replace(matrix, precisions=("float32", "mixed_bfloat16"))
    planner = make_planner(matrix, ceilings, plan.CPU_TIMINGS, None, None, export_root=str(tmp_path))
    tier = planner.tier
    labels = [t.label for t in plan.PRIORITY]
    # the deployment question after the mission's: one runtime with them, the others after
    assert tier["lenet5-infer-bs1-onnxruntime-float32"] == labels.index("the first deployment runtime's float32")
    assert labels.index("the first deployment runtime's float32") == labels.index("training") + 1
    assert tier["lenet5-infer-bs1-litert-float32"] == labels.index("the other runtimes' float32")
    assert tier["lenet5-infer-bs1-onnxruntime-int8"] == labels.index("the runtimes' int8")
    assert "vgg16-infer-bs1-onnxruntime-float32" not in tier  # refused by tf2onnx's memory limit: skipped, unplanned
    vgg16 = "vgg16-infer-bs1-litert-float32"
    assert planner.estimates[vgg16].export > plan.DEFERRED_EXPORT_S and tier[vgg16] == plan.DEFERRED_TIER

    # the same visit with its export found in the cache: no export to pay, back in its tier
    monkeypatch.setattr(exports, "find", lambda *args: True)
    cached = make_planner(matrix, ceilings, plan.CPU_TIMINGS, None, None, export_root=str(tmp_path))
    assert cached.estimates[vgg16].export == 0 and cached.tier[vgg16] == labels.index("the other runtimes' float32")


def test_exports_made_ahead_are_the_ones_a_run_finds_and_a_failure_does_not_stop_the_rest(tmp_path, capsys,
                                                                                          monkeypatch):
    from bench.engines.runtimes import ahead

    cache = str(tmp_path)
    onnx = runtimes.module("onnxruntime")
    real_export = onnx.export

    def failing_on_int8(model, path, precision, *args):
        if precision == "int8":
            raise RuntimeError("quantizer gave up\nand a page of log")
        return real_export(model, path, precision, *args)

    monkeypatch.setattr(onnx, "export", failing_on_int8)
    assert ahead.main(["lenet5", "--runtime", "onnxruntime", "--export-cache", cache]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"\[1/2\] lenet5 ONNX Runtime float32: [\d.]+ s, [\d.]+ MiB$", lines[0])
    assert lines[1] == "[2/2] lenet5 ONNX Runtime int8: ONNX Runtime export failed: RuntimeError: quantizer gave up"
    assert lines[-1] == "failed: lenet5 ONNX Runtime int8"

    monkeypatch.setattr(onnx, "export", real_export)
    assert ahead.main(["lenet5", "--runtime", "onnxruntime", "--export-cache", cache]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[1/2] lenet5 ONNX Runtime float32: cached" and lines[1].endswith(" MiB")
    # what a run's plan finds: nothing left to export
    matrix = resolve({"models": "lenet5", "runtime": "onnxruntime", "batch_sizes": "1"}, gpu=None,
                     installed_runtimes=runtimes.RUNTIMES)
    planner = make_planner(matrix, {"float32": 218e9}, plan.CPU_TIMINGS, None, None, export_root=cache)
    assert [e.export for e in planner.estimates.values()] == [0.0, 0.0]


@pytest.mark.parametrize("argv, message", [
    (["--runtime", "tflite"], "--runtime: unknown 'tflite' (choose from litert, onnxruntime, openvino)"),
    (["--precision", "fp16"], "--precision: unknown 'fp16' (choose from float32, int8)"),
    (["nosuch"], "unknown model 'nosuch'; see `python -m models`"),
])
@pytest.mark.slow
def test_bad_input_to_the_export_command_is_one_line(argv, message, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bench.export", *argv, "--export-cache", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr == f"python -m bench.export: error: {message}\n"
    assert os.listdir(tmp_path) == []
