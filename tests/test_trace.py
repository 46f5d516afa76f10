"""Profiler traces: the layout TensorBoard reads, top operations, a real viewer, and faults that stay warnings."""
import pytest
from conftest import tensorboard_serves

import models
from bench.engines import tensorflow_engine
from bench.engines.shared import xplane_files
from bench.engines.tensorflow_engine import inference_step, synthetic_batch
from bench.measure.matrix import Case
from bench.measure.trace import Tracer

pytestmark = pytest.mark.slow  # every test here starts TensorFlow processes


def test_each_model_mode_and_runtime_has_a_trace_at_its_first_case_with_its_top_operations(smoke_run):
    run, traces = smoke_run
    run_name = run["cnnbench"]["run_name"]
    traced = set()
    for bench in run["benchmarks"]:  # in the order the cases ran
        info = bench["extra_info"]
        if "case" not in info:
            continue
        group = (info["model"], info["mode"], info["runtime"])
        if info["pass"] > 1 or group in traced:  # later passes, and the group's later cases
            assert "trace_dir" not in info
            assert info["pass"] > 1 or not (traces / run_name / info["case"]).exists()
            continue
        traced.add(group)
        assert not info["xla"] and info["precision"] == "float32"  # the reference settings come first
        assert info["trace_dir"] == str(traces / run_name / info["case"])
        # as many steps as fit the tracer's seconds, from the step's median: 3 for a smoke step on a quiet machine
        assert xplane_files(info["trace_dir"]) and info["trace_steps"] == Tracer("-", "-").steps_for(
            info["latency_ms"]["p50"] / 1e3)
        ops = info["top_ops"]
        assert 0 < len(ops) <= 10
        assert [op["self_time_us"] for op in ops] == sorted((op["self_time_us"] for op in ops), reverse=True)
        assert 0 < sum(op["share"] for op in ops) <= 1.0 + 1e-9
    groups = {(b["extra_info"]["model"], b["extra_info"]["mode"], b["extra_info"]["runtime"])
              for b in run["benchmarks"] if "case" in b["extra_info"]}
    assert traced == groups
    conv = next(b["extra_info"] for b in run["benchmarks"]
                if b["extra_info"].get("case", "").startswith("conv5x5-infer")
                and b["extra_info"]["first_call_traced"] and b["extra_info"]["pass"] == 1)
    assert "Conv2D" in conv["top_ops"][0]["type"]  # a single conv: its kernel is where the time goes


def test_a_finished_run_leaves_no_staging_folder(smoke_run):
    _, traces = smoke_run
    assert traces.is_dir() and not (traces.parent / ".traces-staging").exists()


def test_slow_steps_get_fewer_traced_steps_but_one_at_least():
    tracer = Tracer("traces", "run")
    assert [tracer.steps_for(s) for s in (0.001, 0.2, 0.4, 5.0)] == [3, 2, 1, 1]


def test_tensorboard_lists_the_runs_and_serves_a_tool(smoke_run):
    _, traces = smoke_run
    tensorboard_serves(traces, "lenet5-infer-bs1-noxla-float32")


@pytest.fixture(scope="module")
def small_step():
    model = models.build("lenet5")
    return inference_step(model, xla=False), synthetic_batch(model, 2)


CASE = Case("lenet5", "infer", 2, False, "float32")


def test_unwritable_trace_folder_is_a_warning_not_a_failure(tmp_path, small_step):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    tracer = Tracer(str(blocker / "traces"), "run")
    with pytest.warns(RuntimeWarning, match="no trace written"):
        result = tracer.capture(CASE, *small_step)
    assert result["trace_dir"] is None and result["trace_error"] and result["top_ops"] == []


def test_an_interrupted_trace_leaves_nothing_under_the_logdir(tmp_path, small_step, monkeypatch):
    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(tensorflow_engine, "read_top_ops", interrupted)
    root = tmp_path / "traces"
    with pytest.raises(KeyboardInterrupt):
        Tracer(str(root), "run").capture(CASE, *small_step)
    assert not list(root.rglob("*.xplane.pb"))


def test_a_trace_keeps_only_the_xla_programs_that_ran_in_it(tmp_path):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    model = models.build("lenet5")
    x, y = synthetic_batch(model, 2)
    inference_step(model, xla=True)(*synthetic_batch(model, 4))  # another program, loaded but not traced
    step = inference_step(model, xla=True)
    step(x, y)
    result = Tracer(str(tmp_path), "run").capture(Case("lenet5", "infer", 2, True, "float32"), step, (x, y))
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(xplane_files(result["trace_dir"])[0], "rb").read())
    programs = next(plane for plane in space.planes if plane.name == "/host:metadata").event_metadata
    assert len(programs) == 1 and "inference_step" in next(iter(programs.values())).name
