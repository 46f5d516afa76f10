"""LoadGen's serving scenarios (bench.measure.serving): the batching queue, LoadGen's verdicts read from its own log, a
Server rate searched and confirmed, and a real run of LeNet-5 in SingleStream, Server and Offline with its report."""
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import run_bench

from bench.measure import plan, serving
from bench.measure.matrix import Case, resolve
from bench.measure.planning import make_planner


def test_padded_batch_sizes_are_powers_of_two_up_to_the_largest():
    assert serving.buckets(8) == (1, 2, 4, 8)
    assert serving.buckets(6) == (1, 2, 4, 6)
    assert serving.buckets(1) == (1,)


class FakeLoadGen:
    """What the Batcher calls of mlperf_loadgen: each completed query's id."""

    def __init__(self):
        self.completed = []

    @staticmethod
    def QuerySampleResponse(query_id, data, size):
        return query_id

    def QuerySamplesComplete(self, responses):
        self.completed.extend(responses)


class Query:
    def __init__(self, query_id, index):
        self.id, self.index = query_id, index


def test_the_queue_groups_waiting_queries_into_padded_batches_and_completes_each_once():
    shapes, gate = [], threading.Event()

    def infer(x):
        gate.wait(5)  # the first batch holds the worker while the others queue up
        shapes.append(len(x))
        return x

    lg = FakeLoadGen()
    samples = np.zeros((16, 2), np.float32)
    with serving.Batcher(infer, samples, 8, lg) as batcher:
        batcher.issue([Query(0, 0)])
        time.sleep(0.05)
        batcher.issue([Query(i, i % 16) for i in range(1, 12)])  # 11 waiting: a full batch of 8, then 3
        gate.set()
    assert batcher.formed == [1, 8, 3] and shapes == [1, 8, 4]  # 3 queries padded to a batch of 4
    assert sorted(lg.completed) == list(range(12))


def test_an_inference_error_is_raised_after_every_query_is_answered():
    def infer(x):
        raise MemoryError("out of memory")

    lg = FakeLoadGen()
    with serving.Batcher(infer, np.zeros((4, 2), np.float32), 4, lg) as batcher:
        batcher.issue([Query(i, i) for i in range(3)])
    assert isinstance(batcher.error, MemoryError) and sorted(lg.completed) == [0, 1, 2]


@pytest.mark.slow
def test_loadgen_s_verdict_and_its_reasons_in_one_line():
    assert serving.invalid_reason({"result_validity": "VALID"}) is None
    detail = {"result_validity": "INVALID", "result_perf_constraints_met": False, "result_min_duration_met": True,
              "early_stopping_met": False, "result_invalid_reason": "Reduce target QPS to improve latency. ",
              "early_stopping_result": " * Run unsuccessful.\n * Processed 144 queries.\n * Would need to run at "
                                       "least 315 more queries,\n with the run being successful if ..."}
    assert serving.invalid_reason(detail) == ("latency over the bound; early stopping needs 315 more queries, all "
                                              "within the bound; Reduce target QPS to improve latency.")
    assert serving.invalid_reason({"result_validity": "INVALID", "result_min_duration_met": False}) == (
        "min duration not met")


@pytest.mark.slow
def test_a_run_short_only_of_early_stopping_s_queries_says_how_many_it_wanted():
    short = {"result_validity": "INVALID", "result_perf_constraints_met": True, "result_min_duration_met": True,
             "result_min_queries_met": True, "early_stopping_met": False, "result_invalid_reason": "",
             "early_stopping_result": " * Run unsuccessful.  * Processed 500 queries.  * Would need to run at least "
                                      "162 more queries,  with the run being successful if every additional"}
    assert serving.short_of(short) == 162
    assert serving.short_of({**short, "result_perf_constraints_met": False}) is None  # too slow: not a longer run
    assert serving.short_of({**short, "result_invalid_reason": "Reduce target QPS to improve latency."}) is None
    assert serving.short_of({**short, "result_validity": "VALID"}) is None


class ScriptedServer(serving.LoadGen):
    """find_rate's trials answered from a script: (qps, min_queries) -> Trial, without LoadGen."""

    def __init__(self, answer):
        self.answer, self.asked, self.rules = answer, [], "quick"

    def server(self, qps, bound_s, index, search, min_queries=None):
        self.asked.append((round(qps, 6), search, min_queries))
        return self.answer(qps, search, min_queries)


@pytest.mark.slow
def test_a_confirming_trial_short_of_queries_runs_again_at_its_rate_with_what_loadgen_asked_for():
    def answer(qps, search, min_queries):
        if search:  # every rate up to 100 queries/s is within the bound in a short trial
            return serving.Trial("server", False, None, {"p99_ms": 5.0 if qps <= 100 else 50.0}, {}, 1.0, qps)
        if min_queries is None:  # 500 queries, one of them over the bound
            return serving.Trial("server", False, "early stopping needs 162 more queries, all within the bound",
                                 {"p99_ms": 8.0, "queries": 500}, {}, 5.0, qps, short_of=162)
        return serving.Trial("server", min_queries >= 662, None, {"p99_ms": 8.0, "queries": min_queries}, {}, 7.0,
                             qps)

    loadgen = ScriptedServer(answer)
    best, trials = loadgen.find_rate(0.010, 200.0)
    confirms = [ask for ask in loadgen.asked if not ask[1]]
    assert best is trials[-1] and best.valid and len(confirms) == 2
    assert confirms[1][0] == confirms[0][0]  # the same rate, not a slower one
    assert confirms[1][2] == 500 + math.ceil(serving.CONFIRM_EXTRA_QUERIES * 162)


def _sleeper(seconds):
    def infer(x):
        time.sleep(seconds)
        return x
    return infer


@pytest.mark.slow
def test_loadgen_runs_each_scenario_keeps_its_logs_and_a_server_rate_is_confirmed_valid(tmp_path):
    loadgen = serving.LoadGen(_sleeper(0.001), (4,), 8, "quick", str(tmp_path), "toy")
    single = loadgen.single_stream(0.001)
    assert single.valid and single.figures["p90_ms"] >= 1.0 and single.batches["1"] == single.figures["queries"]
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        assert os.path.getsize(os.path.join(single.log_dir, name)) > 0
    offline = loadgen.offline(8 / 0.001)
    assert offline.figures["samples_per_s"] > 0 and "8" in offline.batches

    # a scripted server of 1 ms a query under a bound of 100 ms: some rate is servable, on a loaded machine too
    bound = 0.1
    best, trials = loadgen.find_rate(bound, offline.figures["samples_per_s"] or 1.0)
    assert trials and all(t.target_qps > 0 and t.log_dir and os.path.isdir(t.log_dir) for t in trials)
    confirming = [t for t in trials if t.figures["queries"] >= serving.QUICK["server"]["min_query_count"]]
    assert best is not None and best.valid and best.figures["p99_ms"] <= bound * 1e3 and best in confirming
    assert best.target_qps <= max(t.target_qps for t in trials)
    assert all(t.reason for t in confirming if not t.valid)  # a rate not confirmed says why


def test_scenario_cases_come_after_a_model_s_steps_and_are_planned(tmp_path):
    matrix = resolve({"models": "lenet5,resnet20", "batch_sizes": "1", "mode": "infer", "precision": "float32",
                      "scenario": "steps,single-stream,server,offline"}, gpu=None)
    ids = [case.id for case in matrix.cases()]
    assert ids[:2] == ["lenet5-infer-bs1-noxla-float32", "lenet5-infer-bs1-xla-float32"]
    assert ids[2:5] == ["lenet5-infer-bs1-noxla-float32-single-stream", "lenet5-infer-bs8-noxla-float32-server",
                        "lenet5-infer-bs8-noxla-float32-offline"]
    only = resolve({"models": "lenet5", "scenario": "server"}, gpu=None)
    assert [c.id for c in only.cases()] == ["lenet5-infer-bs8-noxla-float32-server"]

    planner = make_planner(matrix, {"float32": 218e9}, plan.CPU_TIMINGS, None, None, export_root=str(tmp_path))
    single = planner.estimates["resnet20-infer-bs1-noxla-float32-single-stream"]
    server = planner.estimates["resnet20-infer-bs8-noxla-float32-server"]
    assert single.seconds >= 2.0 and server.seconds > single.seconds  # its minimum duration; Server's trials
    scenario_tier = [t.label for t in plan.PRIORITY].index("SingleStream")  # after the deployment runtimes
    assert planner.tier["resnet20-infer-bs1-noxla-float32-single-stream"] == scenario_tier
    mlperf = plan.estimate_serving(Case("resnet20", "infer", 1, False, "float32", scenario="single-stream"),
                                   planner_facts("resnet20"), 218e9, plan.CPU_TIMINGS, rules="mlperf")
    assert mlperf.seconds >= plan.MLPERF_MIN_S
    assert replace(matrix.cases()[2], scenario="steps").id == "lenet5-infer-bs1-noxla-float32"


def planner_facts(name):
    from bench.cost import facts

    return facts.lookup([name], "default")[name]


@pytest.mark.parametrize("options, message", [
    ({"scenario": "batch"}, "--scenario takes steps, single-stream, server, offline; got 'batch'"),
    ({"loadgen_rules": "strict"}, "--loadgen-rules takes quick, mlperf; got 'strict'"),
    ({"latency_bound_ms": -1.0}, "--latency-bound-ms must be positive, got -1.0"),
])
def test_bad_serving_options_are_one_line(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        resolve({"models": "lenet5", **options}, gpu=None)


@pytest.mark.slow
def test_lenet5_served_in_each_scenario_with_loadgen_s_logs_and_the_report(tmp_path):
    done = run_bench("--models", "lenet5", "--runtime", "keras", "--mode", "infer", "--batch-sizes", "1",
                     "--scenario", "steps,single-stream,server,offline", "--xla", "off", "--case-seconds", "0.5",
                     "--precision", "float32",  # one steps case, also where the CPU runs bfloat16 fast (AMX)
                     "--trace-dir", str(tmp_path / "traces"), "-k", "test_case",
                     "--benchmark-json", str(tmp_path / "run.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads((tmp_path / "run.json").read_text())
    infos = {b["extra_info"]["case"]: b["extra_info"] for b in run["benchmarks"]}
    single = infos["lenet5-infer-bs1-noxla-float32-single-stream"]["serving"]
    server = infos["lenet5-infer-bs8-noxla-float32-server"]["serving"]
    offline = infos["lenet5-infer-bs8-noxla-float32-offline"]["serving"]
    assert single["p90_ms"] > 0 and single["queries"] >= 64 and offline["samples_per_s"] > 0
    assert single["back_to_back_p90_ms"] > 0 and single["back_to_back_calls"] >= 10  # beside it, without LoadGen
    assert server["bound_ms"] >= serving.BOUND_FLOOR_S * 1e3 and server["trials"]
    assert server["valid"] == (server["qps_at_bound"] is not None)
    assert all({"target_qps", "p99_ms", "valid", "batches"} <= set(trial) for trial in server["trials"])
    for scenario in (single, offline, *server["trials"]):  # LoadGen's own logs, beside the traces
        assert os.path.exists(os.path.join(scenario["log_dir"], "mlperf_log_summary.txt")), scenario["log_dir"]
        assert str(tmp_path / "traces") in scenario["log_dir"]
    assert not [p for p in os.listdir(tmp_path / "traces") if p.endswith(".staging")]

    (tmp_path / "store" / "run").mkdir(parents=True)
    (tmp_path / "store" / "run" / "0001_run.json").write_text(json.dumps(run))
    report = subprocess.run([sys.executable, "-m", "bench.report", "--storage", str(tmp_path / "store"), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert report.stdout.startswith("1 cases and 3 serving scenarios of 1 models from "), report.stdout[:200]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "*Serving (MLPerf LoadGen)" in text and "*Server trials:" in text and "**Serving**" in text
    assert "quick: not at MLPerf's minimum duration" in text
    assert (tmp_path / "out" / "plots" / "latency_against_load.png").exists()
    # the steps' tables are of steps only: no scenario case among their rows
    assert "single-stream |" not in text.split("*Serving (MLPerf LoadGen)")[0]
