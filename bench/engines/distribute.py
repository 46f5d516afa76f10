"""Data parallelism with TensorFlow's own engine: MirroredStrategy over this host's devices (the replicas axis) and
MultiWorkerMirroredStrategy over the workers of a cluster that TF_CONFIG describes (the workers axis).

TensorFlow is imported inside the functions that need it: a session reads its cluster before TensorFlow starts.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from dataclasses import dataclass

WORKER_TIMEOUT_S = 120.0  # a collective (a step's all-reduce, the cluster forming) waits this long for a worker
EXIT_CLUSTER_NOT_FORMED = 3
# what TensorFlow's errors say when a worker has gone, looked for in this order
LOST_PHRASES = ("stopped sending heartbeats", "Connection reset by peer", "Connection refused", "Socket closed",
                "failed to connect to all addresses", "Deadline Exceeded", "timed out")


@dataclass(frozen=True)
class Cluster:
    addresses: tuple[str, ...]  # host:port of each worker, the chief first
    index: int  # this process's place in `addresses`
    tasks: tuple[str, ...] = ()  # each worker's TensorFlow task, "/job:worker/replica:0/task:1/"

    def remote_tasks(self) -> list[str]:
        return [task for index, task in enumerate(self.tasks) if index != self.index]

    @property
    def workers(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def hosts(self) -> list[str]:
        return [address.rsplit(":", 1)[0] for address in self.addresses]


def cluster_from_env(environ=os.environ) -> Cluster | None:
    """The cluster TF_CONFIG describes (jobs "chief" and "worker", as tf.distribute reads them), or None for none or
    a cluster of one. Raises ValueError with a one-line message for a TF_CONFIG it cannot read."""
    text = environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        jobs, task = config["cluster"], config["task"]
        chiefs, workers = list(jobs.get("chief", [])), list(jobs.get("worker", []))
        if task["type"] not in ("chief", "worker"):
            raise ValueError(f"task type {task['type']!r} (only chief and worker run benchmarks)")
        index = int(task.get("index", 0)) + (len(chiefs) if task["type"] == "worker" else 0)
        addresses = tuple(chiefs + workers)
        tasks = tuple([f"/job:chief/replica:0/task:{i}/" for i in range(len(chiefs))]
                      + [f"/job:worker/replica:0/task:{i}/" for i in range(len(workers))])
        if not 0 <= index < len(addresses):
            raise ValueError(f"task index {task.get('index')} is not in the cluster")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"TF_CONFIG: {err}") from None
    return Cluster(addresses, index, tasks) if len(addresses) > 1 else None


def replica_devices(replicas: int, gpus: int) -> list[str]:
    """One GPU per replica; on a host without GPUs, logical CPU devices, which share its cores: there the replicas
    axis measures the code path and its overhead, never a speed-up."""
    if gpus:
        if replicas > gpus:
            raise ValueError(f"--replicas {replicas}: this host has {gpus} GPU{'s' if gpus > 1 else ''}")
        return [f"/gpu:{index}" for index in range(replicas)]
    return [f"/cpu:{index}" for index in range(replicas)]


def all_reduce_name(strategy) -> str:
    """How the strategy sums gradients: its cross-device ops and, for a cluster, the collective implementation."""
    extended = strategy.extended
    ops = getattr(extended, "_cross_device_ops", None) or getattr(extended, "_inferred_cross_device_ops", None)
    name = type(ops).__name__ if ops is not None else type(strategy).__name__
    implementation = getattr(getattr(extended, "_communication_options", None), "implementation", None)
    return f"{name} ({implementation.name.lower()})" if implementation is not None else name


class Scale:
    """The session's strategies. tf.distribute wants them set up before TensorFlow starts its runtime, so this is
    made first: logical CPU devices for the replicas, the cluster joined."""

    def __init__(self, replicas=(1,), cluster: Cluster | None = None, gpus: int = 0,
                 timeout: float = WORKER_TIMEOUT_S, backend: str = "tensorflow"):
        self.cluster, self.gpus, self.timeout = cluster, gpus, timeout
        if backend != "tensorflow" and (cluster or max(replicas) > 1):
            raise ValueError(f"{'TF_CONFIG' if cluster else '--replicas'}: scaling out runs on TensorFlow's "
                             f"tf.distribute, not on {backend}")
        for count in replicas:
            replica_devices(count, gpus)  # too many for this host: ValueError before anything runs
        if not gpus and max(replicas) > 1:
            import tensorflow as tf

            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * max(replicas))
        self._mirrored = {}
        self.cluster_strategy = _join(cluster, timeout) if cluster else None

    def strategy(self, case):
        """The case's strategy, or None for one replica on one worker (no tf.distribute at all)."""
        if case.workers > 1:
            return self.cluster_strategy
        if case.replicas > 1:
            import tensorflow as tf

            if case.replicas not in self._mirrored:
                self._mirrored[case.replicas] = tf.distribute.MirroredStrategy(
                    replica_devices(case.replicas, self.gpus))
            return self._mirrored[case.replicas]
        return None

    def agree_on(self, items: tuple, chosen) -> tuple:
        """The chief's choice among `items` (those in `chosen`, in their order), on every worker of a cluster: sent as
        one integer, a bit an item, by `agree`."""
        bits = self.agree(sum(1 << i for i, item in enumerate(items) if item in chosen))
        return tuple(item for i, item in enumerate(items) if bits >> i & 1)

    def agree(self, value: int) -> int:
        """The chief's value, on every worker of a cluster; `value` itself elsewhere.

        The workers of a cluster must run the same steps: each step of a scaled case all-reduces, and a worker that
        ran one step more than the others would wait for them for ever. So every count a worker would decide from
        its own clock (admitted by the time budget or not, timed rounds, traced steps) is the chief's. Being a
        collective, this is also a barrier.
        """
        if self.cluster_strategy is None:
            return value
        import tensorflow as tf

        strategy = self.cluster_strategy

        def contribution():  # the chief's first replica gives the value, every other replica 0
            first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
            return tf.cast(first, tf.float64) * float(value) * (1.0 if self.cluster.is_chief else 0.0)

        total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(contribution), axis=None)
        return int(round(float(total)))

    def lost_errors(self) -> tuple:
        """What a step raises when a worker died, hung or cannot be reached (nothing outside a cluster)."""
        if self.cluster is None:
            return ()
        import tensorflow as tf
        return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError)

    def lost_reason(self, err) -> str:
        """One line from TensorFlow's many: which worker (the first task named that is not this one), and what the
        transport or the heartbeats said."""
        message = str(getattr(err, "message", err))
        own = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", self.cluster.tasks[self.cluster.index]).groups()
        others = [task for task in re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", message) if task != own]
        who = f"{others[0][0]} {others[0][1]}" if others else "a worker"
        why = next((phrase for phrase in LOST_PHRASES if phrase.lower() in message.lower()), None)
        if why is None:
            detail = re.search(r'grpc_message:"([^"]+)"', message)
            why = detail.group(1)[:120] if detail else type(err).__name__
        return f"{who} was lost ({why}; a collective waits up to {self.timeout:g} s for a worker)"

    def record(self, case, strategy) -> dict:
        """What a case's saved record says of its scale."""
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        record = {"replicas": replicas, "workers": case.workers, "per_replica_batch": case.batch_size,
                  "global_batch": case.batch_size * replicas,
                  "all_reduce": all_reduce_name(strategy) if strategy is not None and case.mode == "train" else None}
        if self.cluster is not None:
            # a one-worker case runs on every worker at once, each alone: on separate hosts that is one host's
            # figure; workers sharing a machine share its cores, as they do in the scaled case
            record["cluster"] = {"workers": self.cluster.workers, "hosts": self.cluster.hosts,
                                 "worker": self.cluster.index, "concurrent": case.workers == 1}
        return record

    def devices(self, case, strategy) -> int:
        """Devices whose ceilings add up for the case: a GPU per replica, a host per worker; logical CPU devices
        share one CPU's."""
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        return replicas if self.gpus else case.workers


def _join(cluster: Cluster, timeout: float):
    """MultiWorkerMirroredStrategy waits for every worker with no time limit: a watchdog ends this process with one
    line when the cluster has not formed within `timeout` (nothing is written before this point)."""
    import tensorflow as tf

    from . import tensorflow_engine

    tensorflow_engine.sync_only_local_devices(cluster.remote_tasks())

    def give_up():
        sys.stderr.write(f"cnnbench: worker {cluster.index}: the cluster of {cluster.workers} workers "
                         f"({', '.join(cluster.addresses)}) did not form within {timeout:g} s: a worker is missing or "
                         "unreachable\n")
        sys.stderr.flush()
        os._exit(EXIT_CLUSTER_NOT_FORMED)

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    finally:
        watchdog.cancel()
