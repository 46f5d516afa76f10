"""Profiler traces: the layout TensorBoard reads, top operations, a real viewer, and faults that stay warnings."""
import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

import models
from bench import trace
from bench.matrix import Case
from bench.steps import inference_step, synthetic_batch
from bench.trace import Tracer, xplane_files


def test_each_step_has_a_trace_at_its_first_batch_size_with_its_top_operations(smoke_run):
    run, traces = smoke_run
    run_name = run["cnnbench"]["run_name"]
    traced = set()
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        if "case" not in info:
            continue
        if info["pass"] > 1 or not info["first_call_traced"]:  # later passes, and later batch sizes of a step
            assert "trace_dir" not in info
            assert info["pass"] > 1 or not (traces / run_name / info["case"]).exists()
            continue
        traced.add((info["model"], info["mode"], info["xla"], info["precision"]))
        assert info["trace_dir"] == str(traces / run_name / info["case"])
        assert xplane_files(info["trace_dir"]) and info["trace_steps"] == 3  # smoke steps take milliseconds
        ops = info["top_ops"]
        assert 0 < len(ops) <= 10
        assert [op["self_time_us"] for op in ops] == sorted((op["self_time_us"] for op in ops), reverse=True)
        assert 0 < sum(op["share"] for op in ops) <= 1.0 + 1e-9
    steps = {(b["extra_info"]["model"], b["extra_info"]["mode"], b["extra_info"]["xla"], b["extra_info"]["precision"])
             for b in run["benchmarks"] if "case" in b["extra_info"]}
    assert traced == steps
    conv = next(b["extra_info"] for b in run["benchmarks"] if b["extra_info"].get("case", "").startswith("conv5x5-infer")
                and b["extra_info"]["first_call_traced"] and b["extra_info"]["pass"] == 1)
    assert "Conv2D" in conv["top_ops"][0]["type"]  # a single conv: its kernel is where the time goes


def test_a_finished_run_leaves_no_staging_folder(smoke_run):
    _, traces = smoke_run
    assert traces.is_dir() and not (traces.parent / ".traces-staging").exists()


def test_slow_steps_get_fewer_traced_steps_but_one_at_least():
    tracer = Tracer("traces", "run")
    assert [tracer.steps_for(s) for s in (0.001, 0.2, 0.4, 5.0)] == [3, 2, 1, 1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body


def test_tensorboard_lists_the_runs_and_serves_a_tool(smoke_run):
    run, traces = smoke_run
    port = _free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(traces), "--host",
                              "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/profile"
    try:
        deadline, runs = time.monotonic() + 120, []
        while time.monotonic() < deadline and len(runs) < 2:
            try:
                runs = json.loads(_get(f"{base}/runs"))
            except OSError:
                pass
            time.sleep(1)
        case_runs = [r for r in runs if "lenet5-infer-bs1-noxla-float32" in r]
        assert case_runs, runs
        tools = json.loads(_get(f"{base}/run_tools?run={urllib.parse.quote(case_runs[0])}"))
        assert "trace_viewer" in tools or "trace_viewer@" in tools, tools
        hosts = json.loads(_get(f"{base}/hosts?run={urllib.parse.quote(case_runs[0])}&tag=overview_page"))
        host = hosts[0]["hostname"] if hosts and isinstance(hosts[0], dict) else (hosts[0] if hosts else "")
        query = urllib.parse.urlencode({"run": case_runs[0], "tag": "overview_page", "host": host})
        assert len(_get(f"{base}/data?{query}")) > 100
    finally:
        board.terminate()
        board.wait(timeout=30)
    assert board.returncode is not None


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

    monkeypatch.setattr(trace, "read_top_ops", interrupted)
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
