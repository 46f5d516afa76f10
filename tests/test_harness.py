"""The benchmark harness: the matrix, bad input, the saved JSON of a real run, dtype policy, OOM, the clock."""
import json
import math
import os
import statistics
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf
from conftest import run_bench

import models
from bench.core.stats import (
    FAST_STEP_DRIFT,
    MEDIAN_INTERVAL_MIN,
    STEP_DRIFT,
    half_width,
    latency_summary_ms,
    median_error,
    paired_ratio,
)
from bench.engines.tensorflow_engine import synthetic_batch, training_step
from bench.measure import timing
from bench.measure.device import Gpu
from bench.measure.harness import Harness, reference_twins
from bench.measure.matrix import Case, Matrix, resolve
from bench.measure.model_cache import ModelCache
from bench.measure.plan import CaseEstimate, Planner
from bench.measure.timing import Budget, plan_rounds
from bench.report.runs import load_run

EXTRA_KEYS = {"model", "mode", "batch_size", "precision", "xla", "device", "input_shape", "params",
              "trainable_params", "macs_per_sample", "flops_per_step", "latency_ms", "throughput", "compile_s",
              "achieved_tflops", "mfu", "peak_memory_bytes", "rounds", "cv", "median_error", "reached_target"}
H100 = Gpu("NVIDIA H100", (9, 0))


def test_case_ids_read_like_the_case():
    assert Case("resnet50", "infer", 32, True, "float32").id == "resnet50-infer-bs32-xla-float32"


def test_cpu_default_is_the_whole_zoo_at_small_batches_in_20_minutes():
    matrix = resolve({}, gpu=None)
    assert matrix.models == tuple(models.names()) and matrix.time_budget == 20
    assert matrix.precisions == ("float32", "mixed_float16", "mixed_bfloat16")  # candidates: the fast ones run
    assert matrix.grid == {"infer": {False: (1, 8), True: (1,)}, "train": {False: (2,)}}
    every = replace(matrix, precisions=("float32",)).cases()
    cases = [c for c in every if c.scenario == "steps"]
    assert len(cases) == len(models.names()) * 4
    served = [c.id for c in every if c.scenario != "steps"]  # SingleStream for all; Server, Offline for three
    assert len(served) == len(models.names()) + 2 * 3 and "resnet50-infer-bs8-noxla-float32-server" in served
    assert [c.id for c in cases[:4]] == [f"{cases[0].model}-{rest}-float32" for rest in
                                         ("infer-bs1-noxla", "infer-bs8-noxla", "infer-bs1-xla", "train-bs2-noxla")]


def test_xla_and_mode_options_reshape_the_grid():
    assert resolve({"xla": "on,off"}, gpu=None).grid == {"infer": {True: (1, 8), False: (1, 8)},
                                                         "train": {True: (2,), False: (2,)}}
    assert resolve({"xla": "on", "mode": "train", "batch_sizes": "4"}, gpu=None).grid == {"train": {True: (4,)}}


def test_gpu_default_is_the_full_matrix_within_an_hour():
    matrix = resolve({}, gpu=H100)
    assert matrix.grid["infer"] == {False: (1, 8, 32, 64, 128, 256), True: (1, 8, 32, 64, 128, 256)}
    assert matrix.precisions == ("float32", "mixed_float16", "mixed_bfloat16") and matrix.time_budget == 60
    assert Gpu("V100", (7, 0)).fast_precisions == ("float32", "mixed_float16")  # the cross-check's facts


def test_time_budget_option():
    assert resolve({"preset": "full"}, gpu=H100).time_budget is None
    assert resolve({"preset": "smoke"}, gpu=None).time_budget is None
    assert resolve({"time_budget": 0.0}, gpu=None).time_budget is None
    assert resolve({"preset": "full", "time_budget": 90.0}, gpu=H100).time_budget == 90
    with pytest.raises(ValueError, match="--time-budget must be 0"):
        resolve({"time_budget": -1.0}, gpu=None)


def test_options_override_the_preset():
    matrix = resolve({"preset": "smoke", "models": "resnet2*,lenet5", "batch_sizes": "4,2,4", "xla": "off",
                      "precision": "mixed_bfloat16", "mode": "train"}, gpu=None)
    assert matrix.models == ("resnet20", "resnet20v2", "lenet5")
    assert matrix.grid["train"] == {False: (2, 4)}
    assert [c.id for c in matrix.cases()][:2] == ["resnet20-train-bs2-noxla-mixed_bfloat16",
                                                   "resnet20-train-bs4-noxla-mixed_bfloat16"]
    assert matrix.explicit_precisions and matrix.input_size == "small"


def test_passes_visit_every_case_pass_after_pass():
    matrix = resolve({"models": "lenet5", "mode": "infer", "xla": "off", "passes": 2, "precision": "float32",
                      "scenario": "steps"}, gpu=None)
    assert [c.test_id for c in matrix.visits()] == ["lenet5-infer-bs1-noxla-float32", "lenet5-infer-bs8-noxla-float32",
                                                    "lenet5-infer-bs1-noxla-float32-pass2",
                                                    "lenet5-infer-bs8-noxla-float32-pass2"]
    assert {c.id for c in matrix.visits()} == {c.id for c in matrix.cases()}
    assert resolve({"preset": "smoke"}, gpu=None).passes == 3 and resolve({}, gpu=None).passes == 1
    harness = Harness(matrix, Budget(max_seconds=0.6))
    assert harness.budget_for(matrix.visits()[2]).max_seconds == pytest.approx(0.3)  # each pass its share


@pytest.mark.parametrize("options, message", [
    ({"passes": 0}, "--passes must be at least 1"),
    ({"models": "resnet5"}, "unknown model 'resnet5'"),
    ({"models": "nothing*"}, "no model matches"),
    ({"batch_sizes": "8,0"}, "positive integers, got '0'"),
    ({"batch_sizes": "2.5"}, "positive integers, got '2.5'"),
    ({"precision": "float64"}, "--precision takes"),
    ({"xla": "maybe"}, "--xla takes on, off"),
    ({"mode": "eval"}, "--mode takes infer, train"),
    ({"preset": "huge"}, "--bench-preset takes"),
    ({"models": ","}, "no empty items"),
])
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        resolve(options, gpu=None)


@pytest.mark.parametrize("args, message", [
    (["--models", "resnet5"], "unknown model 'resnet5'"),
    (["--batch-sizes", "-1"], "positive integers"),
    (["--precision", "fp8"], "--precision takes"),
])
@pytest.mark.slow
def test_bad_options_stop_the_run_with_one_line(args, message, tmp_path):
    # oneDNN on, as on AVX-512 CPUs, adds TensorFlow's start-up line to the ones printed without a GPU driver
    done = run_bench(*args, "--no-trace", env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1"), cwd=tmp_path)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and "\n" not in output, output
    assert output.startswith("ERROR: ") and message in output


@pytest.mark.slow
def test_saved_json_of_a_real_run_holds_every_key(smoke_run, tmp_path):
    run, _ = smoke_run
    timed = [b for b in run["benchmarks"] if b["name"].startswith("test_case[")]
    cases = [b for b in timed if "process" not in b["extra_info"]]
    assert len(cases) == 3 * 2 * (2 * 2 + 2)  # 3 passes of 2 models, each at 2 batch sizes x XLA on/off + training
    # the spread worker: comparisons of the run timed again in a fresh process, each twin before its case
    again = [b["extra_info"] for b in timed if "process" in b["extra_info"]]
    assert again and {(i["process"], i["pass"]) for i in again} == {(1, 4)}
    compared = [i for i in again if i.get("paired")]
    assert compared and {p["against"] for i in compared for p in i["paired"]} <= {i["case"] for i in again}
    assert {i["case"] for i in again} <= {b["extra_info"]["case"] for b in cases}
    assert len({i["latency_ms"]["p50"] >= 10 for i in compared}) == 2  # steps of both classes
    (tmp_path / "run.json").write_text(json.dumps(run))
    drift = load_run(str(tmp_path / "run.json")).ratio_noise  # the report's intervals: from the processes' spread
    assert drift.unit == "process" and drift.spreads and "worker processes" in drift.source
    assert [b["extra_info"]["pass"] for b in cases] == [1] * 12 + [2] * 12 + [3] * 12  # pass after pass
    assert cases[12]["name"] == cases[0]["name"][:-1] + "-pass2]" and len(cases[0]["extra_info"]["round_ms"]) >= 3
    for bench in cases:
        info = bench["extra_info"]
        assert EXTRA_KEYS <= set(info), EXTRA_KEYS - set(info)
        latency = info["latency_ms"]
        assert latency["min"] <= latency["p50"] <= latency["max"] and latency["samples"] == info["rounds"]
        assert (latency["p90"] is None) == (info["rounds"] < 64) and (latency["p99"] is None) == (info["rounds"] < 662)
        assert info["median_error"] > 0 and info["reached_target"] == (info["median_error"] <= info["target_error"])
        assert info["mfu"] > 0
        assert info["throughput"] == pytest.approx(info["batch_size"] / (latency["p50"] / 1e3), rel=1e-9)
        assert info["rounds"] == bench["stats"]["rounds"] >= 3
        assert latency["p50"] == pytest.approx(bench["stats"]["median"] * 1e3, rel=1e-9)
        per_sample = info["flops_per_step"] / info["batch_size"]
        assert per_sample >= 2 * info["macs_per_sample"] > 0
        assert info["mfu"] == pytest.approx(info["achieved_tflops"] * 1e12 /
                                            run["machine_info"]["cnnbench"]["peak_flops_per_s"]["float32"])
        assert bench["group"] == info["model"] and info["compile_s"] > 0 and info["peak_memory_bytes"] > 0
    conv = next(b["extra_info"] for b in cases if b["extra_info"]["case"] == "conv5x5-infer-bs8-noxla-float32")
    assert conv["macs_per_sample"] == 120_422_400 and conv["flops_per_step"] == 8 * conv["flops_per_sample"]
    machine = run["machine_info"]["cnnbench"]
    assert machine["tensorflow_version"] == tf.__version__ and machine["peak_bandwidth_bytes_per_s"] > 0
    # measured at the start and again at the end of the session, the higher kept, with the probe that gave it
    first, last = machine["peak_flops_measurements"]["float32"]
    assert machine["peak_flops_per_s"]["float32"] == max(first, last)
    assert machine["peak_probe"]["float32"].startswith(("matmul", "conv3x3"))


def test_dtype_policy_does_not_leak():
    cache = ModelCache()
    model, _ = cache.get("lenet5", "mixed_float16", "default")
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert keras.config.dtype_policy().name == "float32"
    cache.clear()


def test_the_next_model_frees_the_last_ones_training_step():
    def allocated():
        return tf.config.experimental.get_memory_info("CPU:0")["current"]

    cache = ModelCache()
    before = allocated()
    model, _ = cache.get("resnet56", "float32", "small")
    x, y = synthetic_batch(model, 2)
    training_step(model, xla=False, precision="float32")(x, y)
    weights = sum(v.numpy().nbytes for v in model.weights)
    del model, x, y
    cache.clear()
    assert allocated() - before < weights / 4  # weights and momentum (7 MiB) would stay pinned by a kept step


def test_a_cost_example_s_second_module_is_timed_beside_the_first_which_the_cache_keeps():
    case = Case("conv5x5_bottleneck", "infer", 8, False, "float32")
    assert [t.id for t in reference_twins(case)] == ["conv5x5-infer-bs8-noxla-float32"]
    assert reference_twins(replace(case, model="conv5x5")) == []
    cache = ModelCache()
    first, _ = cache.get("conv5x5", "float32", "small")
    cache.step(("conv5x5", "keras", "float32", "infer", False), lambda: "step of the first")
    second, _ = cache.get("conv5x5_bottleneck", "float32", "small", keep="conv5x5")
    assert cache.built_step(("conv5x5", "keras", "float32", "infer", False)) == "step of the first"
    assert cache.get("conv5x5", "float32", "small", keep="conv5x5_bottleneck")[0] is first  # not built again
    cache.get("lenet5", "float32", "small")  # the next model, which keeps neither
    assert cache.built_step(("conv5x5", "keras", "float32", "infer", False)) is None
    assert cache.get("conv5x5_bottleneck", "float32", "small")[0] is not second
    cache.clear()


@pytest.mark.slow
def test_the_cost_example_s_modules_are_paired_though_their_outputs_differ(tmp_path):
    """inception3a_naive's output has 416 channels, inception3a's 256: each step takes a batch of its own model's."""
    done = run_bench("--models", "inception3a_naive,inception3a", "--input-size", "small", "--mode", "infer,train",
                     "--batch-sizes", "1", "--xla", "off", "--precision", "float32", "--runtime", "keras",
                     "--scenario", "steps", "--no-trace", "--case-seconds", "0.3",
                     "--benchmark-json", str(tmp_path / "run.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    infos = {b["extra_info"]["case"]: b["extra_info"] for b in json.loads((tmp_path / "run.json").read_text())
             ["benchmarks"] if "case" in b["extra_info"]}
    for mode in ("infer", "train"):
        paired = infos[f"inception3a-{mode}-bs1-noxla-float32"]["paired"]
        assert [p["against"] for p in paired] == [f"inception3a_naive-{mode}-bs1-noxla-float32"]
        assert paired[0]["pairs"] >= 3 and paired[0]["ratio"] > 1  # the 1x1 reductions make it faster


class FakeBenchmark:
    """pytest-benchmark's fixture under --benchmark-disable: no stats, and pedantic calls its setup and target once."""

    def __init__(self):
        self.extra_info, self.stats, self.group, self.calls = {}, None, None, 0

    def pedantic(self, target, args=(), setup=None, **_):
        if setup is not None:
            setup()
        target(*args)
        self.calls += 1


def test_out_of_memory_skips_the_case_and_the_larger_batches(monkeypatch):
    harness = Harness(Matrix(("lenet5",), {"infer": {False: (1, 8, 32)}}), Budget(min_rounds=1))
    real_step = harness.make_step

    def make_step(case, model, strategy=None, deployed=None):
        if case.batch_size >= 8:
            def step(x, y):
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
            return step, True
        return real_step(case, model, strategy, deployed)

    monkeypatch.setattr(harness, "make_step", make_step)
    small, medium, large = harness.matrix.cases()
    harness.run(small, FakeBenchmark())
    for case in (medium, large):
        with pytest.raises(pytest.skip.Exception, match="out of memory at batch 8"):
            harness.run(case, FakeBenchmark())
    assert [(skip["case"], skip["reason"]) for skip in harness.skipped] == [
        (medium.id, "out of memory at batch 8"), (large.id, "out of memory at batch 8")]
    harness.cache.clear()


def test_a_case_outside_the_time_budget_is_skipped_with_that_reason():
    matrix = Matrix(("lenet5",), {"infer": {False: (1, 8)}}, time_budget=1)
    harness = Harness(matrix, Budget(min_rounds=1))
    batch1, batch8 = matrix.cases()
    estimates = {batch1.test_id: CaseEstimate(0.001, 5.0, 1.0), batch8.test_id: CaseEstimate(0.1, 1000.0, 0.0)}
    harness.planner = Planner(matrix.visits(), estimates, {"lenet5": 1.0}, deadline=time.perf_counter() + 60)
    harness.run(batch1, FakeBenchmark())  # 7 s of estimate fit; the next one's 1000 s do not, however far off
    with pytest.raises(pytest.skip.Exception, match="outside the time budget"):
        harness.run(batch8, FakeBenchmark())
    assert harness.skipped == [{"case": batch8.id, "model": "lenet5", "mode": "infer", "batch_size": 8, "xla": False,
                                "precision": "float32", "replicas": 1, "workers": 1, "runtime": "keras",
                                "scenario": "steps", "reason": "outside the time budget"}]
    assert len(harness.planner.spent) == 1 and not harness.planner.pending
    harness.cache.clear()


def test_a_step_serves_every_batch_size_of_its_setting():
    harness = Harness(Matrix(("lenet5",), {"infer": {False: (1, 8)}}), Budget(min_rounds=1, max_seconds=0.05))
    for case in harness.matrix.cases():
        harness.run(case, FakeBenchmark())
    model, _ = harness.cache.get("lenet5", "float32", "default")
    step, new = harness.make_step(Case("lenet5", "infer", 8, False, "float32"), model)
    assert not new and step.experimental_get_tracing_count() == 1  # traced once, for batch 1 and batch 8
    harness.cache.clear()


def test_timed_region_ends_when_the_device_has_finished(monkeypatch):
    """A fake asynchronous device: the call returns at once, the work finishes 50 ms later."""
    pending = []

    def launch():
        worker = threading.Thread(target=time.sleep, args=(0.05,))
        worker.start()
        pending.append(worker)

    monkeypatch.setattr(timing, "engine", lambda: SimpleNamespace(wait=lambda _result: [w.join() for w in pending]))
    assert timing.timed_call(launch) >= 0.05


def test_rounds_stop_at_precision_or_budget():
    assert plan_rounds([0.010, 0.010, 0.010], Budget(min_rounds=5)) == (5, "min_rounds")
    rounds, reason = plan_rounds([0.010, 0.012, 0.008], Budget(min_rounds=5, max_seconds=100))
    assert reason == "precision" and 5 < rounds < 10_000
    assert plan_rounds([0.010, 0.012, 0.008], Budget(min_rounds=5, max_seconds=0.5)) == (50, "budget")


def test_a_slow_step_gets_its_floor_of_rounds_and_more_only_within_its_seconds():
    slow_step = [1.0, 1.05, 0.95]
    assert plan_rounds(slow_step, Budget(min_rounds=3, max_seconds=2.0)) == (3, "min_rounds")
    assert plan_rounds(slow_step, Budget(min_rounds=3, max_seconds=6.0)) == (6, "budget")


def test_latency_percentiles_are_true_percentiles_with_enough_samples():
    summary = latency_summary_ms([i / 1000 for i in range(1, 1001)])  # 1..1000 ms
    assert summary["p50"] == pytest.approx(500.5) and summary["p90"] == pytest.approx(900.1)
    assert summary["p99"] == pytest.approx(990.01) and summary["min"] == 1.0 and summary["samples"] == 1000


def test_tail_percentiles_are_null_below_their_sample_counts():
    few = latency_summary_ms([i / 1000 for i in range(1, 4)])
    assert few["p50"] == pytest.approx(2.0) and few["p90"] is None and few["p99"] is None and few["max"] == 3.0
    some = latency_summary_ms([i / 1000 for i in range(1, 101)])
    assert some["p90"] == pytest.approx(90.1) and some["p99"] is None and some["samples"] == 100
    assert latency_summary_ms([0.001] * 662)["p99"] == pytest.approx(1.0)


def test_the_median_interval_widens_with_few_rounds():
    assert median_error([0.010]) is None
    # The same spread: with 3 rounds Student's t (4.30 for 2 degrees of freedom) widens it, not 1.96
    three = median_error([0.009, 0.010, 0.011])
    assert three == pytest.approx(4.303 * 1.2533 * 0.001 / 3 ** 0.5 / 0.010, rel=1e-3)
    many = median_error([0.009, 0.010, 0.011] * 20)
    assert many < three / 5
    # From 6 rounds on, order statistics: ten 10x outliers in 100 rounds move the interval by one rank at most
    steady = [0.010 + i * 1e-5 for i in range(90)]
    assert median_error(steady + [0.1] * 10) < 2 * median_error(steady) < 0.02


def test_latency_scenario_times_its_samples_within_its_time_limit():
    harness = Harness(Matrix(("lenet5",), {"infer": {False: (1, 8)}}, latency_samples=700, latency_seconds=5.0),
                      Budget(min_rounds=3, max_seconds=0.5))
    batch1, batch8 = (Case("lenet5", "infer", b, False, "float32") for b in (1, 8))
    assert plan_rounds([0.001] * 3, harness.budget_for(batch1)) == (700, "min_rounds")
    assert plan_rounds([0.010] * 3, harness.budget_for(batch1)) == (500, "budget")  # 700 steps need 7 s
    assert plan_rounds([0.001] * 3, harness.budget_for(batch8)) == (3, "min_rounds")
    assert resolve({"latency_samples": 662}, gpu=None).latency_samples == 662
    with pytest.raises(ValueError, match="--latency-samples must be at least 1"):
        resolve({"latency_samples": 0}, gpu=None)


def test_rounds_stop_at_the_budget_s_targets_or_at_half_the_drift_the_report_adds_where_wider():
    budget = Budget(target_error=0.02)
    slow = timing.stop_targets(budget, 0.050)  # the median's: 1.96 x 4% / 2 = 3.9%, wider than 2%; the pairs' 5%
    assert slow == (pytest.approx(1.96 * STEP_DRIFT / 2), timing.PAIR_TARGET) and slow[0] > budget.target_error
    fast = timing.stop_targets(budget, 0.002)  # a ratio stops at 5% however small its step
    assert fast == (pytest.approx(1.96 * FAST_STEP_DRIFT / 2), timing.PAIR_TARGET)
    # what that costs a median's printed interval: at most 12% wider than the drift alone makes it
    assert math.hypot(1.96 * FAST_STEP_DRIFT, fast[0]) <= 1.12 * 1.96 * FAST_STEP_DRIFT


def _sleeper(seconds, calls=None, name=None):
    def step(*_):
        if calls is not None:
            calls.append(name)
        time.sleep(seconds() if callable(seconds) else seconds)
    return step


def _stopped_by_its_word(rounds, benchmark):
    """'precision' only where the interval pytest-benchmark recorded met the case's target (and every paired one its
    own), as stop_targets sets them for the step's median."""
    recorded = benchmark.stats.stats.data
    error = median_error(recorded)
    median_target, pair_target = timing.stop_targets(rounds.budget, statistics.median(recorded))
    if rounds.stop_reason == "precision":
        assert error <= median_target, error
        assert all(len(r) >= MEDIAN_INTERVAL_MIN and half_width(paired_ratio(r)) <= pair_target
                   for r in rounds.ratios().values())
    else:
        assert rounds.stop_reason in ("budget", "min_rounds")
    return error


def test_a_case_is_timed_block_by_block_beside_its_twin_in_a_random_order(benchmark):
    import itertools
    calls = []
    own, twin = _sleeper(0.002, calls, "own"), _sleeper(0.004, calls, "twin")
    rounds = timing.Rounds(own, (), Budget(min_rounds=100, max_seconds=2.0), {"twin": (twin, ())}, seed=1,
                           settle_s=timing.RUNTIME_SETTLE_S)
    rounds.run(benchmark)
    assert len(rounds.own) == len(benchmark.stats.stats.data) >= 100  # pytest-benchmark recorded each own call
    assert sum(map(len, rounds.own_blocks)) == len(rounds.own)
    rounds_run = len(rounds.own_blocks)
    assert len(rounds.twin_blocks["twin"]) == len(rounds.ratios()["twin"]) == rounds_run  # one pair a round
    for block in [*rounds.own_blocks, *rounds.twin_blocks["twin"]]:  # calls back to back for the settling time
        assert len(block) > 1 and sum(block) + block[-1] > rounds.settle_s >= sum(block[:-1]) + block[-2]
    assert calls.count("own") > len(rounds.own)  # the untimed calls that settle each block
    runs = len([name for name, _ in itertools.groupby(calls)])
    # one run of calls per step a round; fewer where a round began with the step the last one ended with: both orders
    assert rounds_run < runs < 2 * rounds_run
    _stopped_by_its_word(rounds, benchmark)


def test_a_step_is_timed_once_it_has_settled_after_another(benchmark, monkeypatch):
    """A step called right after another runs slow for a while (the pools of threads the other left spinning): here
    3x for one call. Its timed calls come after the untimed ones that absorb it, on both sides of each pair."""
    clock, last = SimpleNamespace(now=0.0), []
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock.now))

    def step(name, seconds):
        def call():
            clock.now += seconds * (3 if last and last[-1] != name else 1)
            last.append(name)
        return call
    rounds = timing.Rounds(step("own", 0.001), (), Budget(min_rounds=50, max_seconds=0.5),
                           {"twin": (step("twin", 0.002), ())}, seed=2)
    rounds.run(benchmark)
    assert len(set(last)) == 2
    _stopped_by_its_word(rounds, benchmark)  # 'precision' from MEDIAN_INTERVAL_MIN pairs on, however steady
    assert max(rounds.own) == pytest.approx(0.001) and rounds.ratios()["twin"] == pytest.approx(
        [2.0] * len(rounds.own_blocks))  # the case's throughput over the twin's: 0.002 s over 0.001 s, no 3x in it


def test_rounds_that_cannot_meet_the_target_stop_at_the_budget_and_say_so(benchmark, monkeypatch):
    import itertools
    clock = SimpleNamespace(now=0.0)  # the rounds' own clock, advanced by the steps alone: a busy machine's pauses
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock.now))  # do not move it
    # every other round 4x the last: the median's interval spans both, so no ±2% in 0.3 s (drawn at random, one run
    # in thirty or so drew one kind well over half the rounds, and its median's interval fell within that kind)
    durations = itertools.cycle((0.001, 0.004))

    def noisy():
        seconds = next(durations)
        clock.now += seconds
        time.sleep(seconds)  # what pytest-benchmark records
    rounds = timing.Rounds(noisy, (), Budget(min_rounds=3, max_seconds=0.3))
    assert rounds.run(benchmark) == "budget"
    spent = sum(rounds.own)
    assert spent + rounds.own[-1] > 0.3  # stopped once the next round would overrun its seconds ...
    assert spent <= 0.3 + 0.004  # ... having overrun them by one round at most
    assert _stopped_by_its_word(rounds, benchmark) > 0.02


class ScriptedBenchmark:
    """pytest-benchmark's pedantic rounds on a scripted clock: each round records what the step advanced it by."""

    def __init__(self, clock):
        self.clock, self.has_error = clock, False
        self.stats = SimpleNamespace(stats=SimpleNamespace(data=[]))

    def pedantic(self, target, args=(), setup=None, rounds=1, **_):
        for _ in range(rounds):
            if setup is not None:
                setup()
            started = self.clock.now
            target(*args)
            self.stats.stats.data.append(self.clock.now - started)


def test_rounds_stop_once_the_median_is_known(monkeypatch):
    import itertools
    clock = SimpleNamespace(now=0.0)  # a step's seconds scripted: no sleep, and no loaded machine, can change them
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    durations = itertools.cycle((0.002, 0.00204, 0.00196))

    def step():
        clock.now += next(durations)
    rounds, benchmark = timing.Rounds(step, (), Budget(min_rounds=5, max_seconds=60.0)), ScriptedBenchmark(clock)
    assert rounds.run(benchmark) == "precision" and len(rounds.own) < 20  # ±2% of the median: a few rounds
    _stopped_by_its_word(rounds, benchmark)


def test_references_come_before_the_cases_compared_with_them():
    matrix = resolve({"models": "lenet5", "mode": "infer", "batch_sizes": "1", "xla": "on,off",
                      "precision": "mixed_bfloat16,float32", "scenario": "steps"}, None)
    assert [c.id for c in matrix.cases()] == ["lenet5-infer-bs1-noxla-float32", "lenet5-infer-bs1-xla-float32",
                                             "lenet5-infer-bs1-noxla-mixed_bfloat16",
                                             "lenet5-infer-bs1-xla-mixed_bfloat16"]
    harness_twins = [t.id for t in reference_twins(matrix.cases()[3])]
    assert harness_twins == ["lenet5-infer-bs1-noxla-mixed_bfloat16", "lenet5-infer-bs1-xla-float32"]
