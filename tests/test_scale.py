"""Scale-out: the replicas axis (MirroredStrategy over logical CPU devices here, GPUs described), the cluster of
TF_CONFIG, scaling efficiency, and what a lost worker's error is turned into."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_bench

from bench.core.records import scaling
from bench.engines import distribute as scale
from bench.measure.matrix import CPU_DEFAULT, resolve
from bench.report.runs import load_run


def test_replica_ids_axes_and_no_xla_across_replicas():
    matrix = resolve({"models": "resnet20", "mode": "train", "replicas": "2,1", "batch_sizes": "8"}, None)
    assert matrix.replicas == (1, 2)
    assert [case.id for case in matrix.cases()] == ["resnet20-train-bs8-noxla-float32",
                                                    "resnet20-train-bs8-noxla-float32-r2",
                                                    "resnet20-train-bs8-noxla-mixed_float16",
                                                    "resnet20-train-bs8-noxla-mixed_float16-r2",
                                                    "resnet20-train-bs8-noxla-mixed_bfloat16",
                                                    "resnet20-train-bs8-noxla-mixed_bfloat16-r2"]
    infer = resolve({"models": "lenet5", "mode": "infer", "replicas": "1,2", "xla": "on,off",
                     "batch_sizes": "1", "precision": "float32"}, None)
    # XLA off first, the reference an XLA case is timed beside; none with XLA across replicas
    assert [c.id for c in infer.cases()] == ["lenet5-infer-bs1-noxla-float32", "lenet5-infer-bs1-xla-float32",
                                             "lenet5-infer-bs1-noxla-float32-r2"]
    assert CPU_DEFAULT.replicas == (1,) and all((c.replicas, c.workers) == (1, 1) for c in resolve({}, None).cases())


def test_a_cluster_adds_its_workers_case_beside_each_one_worker_case():
    matrix = resolve({"models": "lenet5", "mode": "train", "batch_sizes": "8", "precision": "float32",
                      "workers": 3}, None)
    assert [c.id for c in matrix.cases()] == ["lenet5-train-bs8-noxla-float32", "lenet5-train-bs8-noxla-float32-w3"]
    with pytest.raises(ValueError, match="--replicas does not combine with a cluster"):
        resolve({"models": "lenet5", "replicas": "1,2", "workers": 2}, None)
    with pytest.raises(ValueError, match="--replicas takes positive integers"):
        resolve({"models": "lenet5", "replicas": "1,0"}, None)


def test_replicas_go_one_per_gpu_and_no_further():
    assert scale.replica_devices(2, gpus=4) == ["/gpu:0", "/gpu:1"]
    assert scale.replica_devices(3, gpus=0) == ["/cpu:0", "/cpu:1", "/cpu:2"]  # logical devices on one CPU
    with pytest.raises(ValueError, match="--replicas 4: this host has 2 GPUs"):
        scale.replica_devices(4, gpus=2)


def _tf_config(cluster, task_type, index):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_the_cluster_is_read_from_tf_config_as_tf_distribute_reads_it():
    workers = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"]}
    found = scale.cluster_from_env(_tf_config(workers, "worker", 2))
    assert (found.workers, found.index, found.is_chief) == (3, 2, False)
    assert found.hosts == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert found.remote_tasks() == ["/job:worker/replica:0/task:0/", "/job:worker/replica:0/task:1/"]
    with_chief = scale.cluster_from_env(_tf_config({"chief": ["a:1"], "worker": ["b:1"]}, "chief", 0))
    assert with_chief.is_chief and with_chief.tasks == ("/job:chief/replica:0/task:0/", "/job:worker/replica:0/task:0/")
    assert scale.cluster_from_env({}) is None
    assert scale.cluster_from_env(_tf_config({"worker": ["a:1"]}, "worker", 0)) is None  # one worker: a plain run
    for bad in ({"TF_CONFIG": "{not json"}, _tf_config(workers, "ps", 0), _tf_config(workers, "worker", 5)):
        with pytest.raises(ValueError, match="^TF_CONFIG: "):
            scale.cluster_from_env(bad)


def test_a_lost_worker_is_named_in_one_line():
    lost = scale.Scale.__new__(scale.Scale)
    lost.cluster = scale.cluster_from_env(_tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "worker", 0))
    lost.timeout = 30
    message = ("{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/device:CPU:0}} "
               "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are "
               "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nAdditional GRPC error")
    reason = lost.lost_reason(RuntimeError(message))
    assert reason == ("worker 1 was lost (stopped sending heartbeats; a collective waits up to 30 s for a worker)")
    assert "\n" not in lost.lost_reason(RuntimeError("something\nelse"))


def _record(case, replicas, throughput, error=0.02, workers=1):
    return {"case": case, "model": "m", "mode": "train", "batch_size": 8, "precision": "float32", "xla": False,
            "input_shape": [32, 32, 3], "replicas": replicas, "workers": workers, "throughput": throughput,
            "median_error": error}


def test_scaling_efficiency_is_against_the_same_runs_one_replica_case():
    records = [_record("base", 1, 100.0), _record("r2", 2, 150.0), _record("r4", 4, 200.0, error=None),
               {**_record("other", 2, 80.0), "batch_size": 16}]
    result = scaling(records)
    assert set(result) == {1, 2}  # the bs-16 case has no one-replica case
    assert result[1]["efficiency"] == pytest.approx(0.75) and result[1]["speedup"] == pytest.approx(1.5)
    assert result[1]["error"] == pytest.approx(0.75 * (2 * 0.02 ** 2) ** 0.5)
    assert result[1]["baseline"] == "base"
    assert result[2]["efficiency"] == pytest.approx(0.5) and result[2]["error"] is None


ALL_REDUCE_CHECK = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, models
from bench.engines.tensorflow_engine import synthetic_batch, training_step
from bench.measure.model_cache import ModelCache
keras.utils.set_random_seed(1)
plain, _ = ModelCache().get("lenet5", "float32", "default")
weights = plain.get_weights()
x, y = synthetic_batch(plain, 4)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored, _ = ModelCache().get("lenet5", "float32", "default", strategy)
mirrored.set_weights(weights)
same = lambda i: strategy.experimental_distribute_values_from_function(lambda _: (x, y)[i])
training_step(plain, xla=False, precision="float32")(x, y)
training_step(mirrored, xla=False, precision="float32", strategy=strategy)(same(0), same(1))
moved = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), weights))
apart = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), mirrored.get_weights()))
print(moved, apart)
"""


@pytest.mark.slow
def test_two_replicas_of_the_same_batch_take_one_replicas_step():
    """The per-replica loss is divided by the replicas and the optimizer sums their gradients: two replicas that
    see the same batch must move the weights exactly as one replica on it does."""
    done = subprocess.run([sys.executable, "-c", ALL_REDUCE_CHECK], capture_output=True, text=True,
                          cwd=ROOT / "tests", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    moved, apart = map(float, done.stdout.split()[-2:])
    assert moved > 1e-5  # the step moved the weights
    assert apart < moved * 1e-3


@pytest.mark.slow
def test_replicas_run_records_both_cases_with_their_efficiency(tmp_path):
    done = run_bench("--models", "resnet20", "--mode", "train", "--replicas", "1,2", "--precision", "float32",
                     "--batch-sizes", "8", "--case-seconds", "0.5", "--no-trace", "--benchmark-autosave",
                     f"--benchmark-storage=file://{tmp_path / 'store'}", "-k", "test_case", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [saved] = (tmp_path / "store").glob("*/*.json")
    infos = {b["extra_info"]["case"]: b["extra_info"] for b in json.loads(saved.read_text())["benchmarks"]}
    one, two = infos["resnet20-train-bs8-noxla-float32"], infos["resnet20-train-bs8-noxla-float32-r2"]
    assert (one["replicas"], one["global_batch"], one["all_reduce"]) == (1, 8, None)
    assert (two["replicas"], two["per_replica_batch"], two["global_batch"]) == (2, 8, 16)
    assert two["all_reduce"].startswith("CollectiveAllReduce")
    assert two["throughput"] == pytest.approx(16 / (two["latency_ms"]["p50"] / 1e3))
    assert two["scaling"]["baseline"] == one["case"]
    assert two["scaling"]["efficiency"] == pytest.approx(two["throughput"] / (2 * one["throughput"]))
    run = load_run(str(saved))
    assert [c["case"] for c in run.scaled] == [two["case"]] and [c["case"] for c in run.cases] == [one["case"]]
