"""The device a run measures on: what it is, how to wait for it, and its measured peak FLOP/s and bandwidth."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from functools import lru_cache

import psutil
import tensorflow as tf

TERRAFORM_PREFIXES = ("TF_CLI_", "TF_VAR_", "TF_LOG", "TF_PLUGIN_", "TF_DATA_DIR", "TF_IN_AUTOMATION",
                      "TF_INPUT", "TF_WORKSPACE")  # other tools' variables that share the TF_ prefix
COMPUTE_DTYPES = {"float32": tf.float32, "mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: tuple[int, int]

    @property
    def fast_precisions(self) -> tuple[str, ...]:
        """float16 is fast from compute capability 7.0 (tensor cores), bfloat16 from 8.0."""
        fast = ["float32"]
        if self.compute_capability >= (7, 0):
            fast.append("mixed_float16")
        if self.compute_capability >= (8, 0):
            fast.append("mixed_bfloat16")
        return tuple(fast)


@lru_cache(maxsize=None)
def gpu() -> Gpu | None:
    devices = tf.config.list_physical_devices("GPU")
    if not devices:
        return None
    details = tf.config.experimental.get_device_details(devices[0])
    return Gpu(details.get("device_name", "GPU"), tuple(details.get("compute_capability", (0, 0))))


def gpu_count() -> int:
    return len(tf.config.list_physical_devices("GPU"))


def device_name() -> str:
    found = gpu()
    return f"GPU:0 ({found.name})" if found else f"CPU ({cpu_model()})"


FAST_MARGIN = 1.25  # a mixed precision counts as fast where its ceiling beats float32's by this much


def speedups(peaks: "Peaks", precisions) -> dict[str, float]:
    """Each precision's ceiling over float32's, from the same probes."""
    base = peaks.flops("float32")
    return {precision: peaks.flops(precision) / base for precision in precisions}


def fast_precisions(speedup: dict[str, float]) -> tuple[str, ...]:
    """float32 and every precision whose probes ran FAST_MARGIN times faster: measured, on a CPU as on a GPU
    (where `Gpu.fast_precisions`, from the compute capability, is the cross-check)."""
    return ("float32",) + tuple(p for p, ratio in speedup.items() if p != "float32" and ratio >= FAST_MARGIN)


def precision_record(speedup: dict[str, float]) -> dict:
    """For machine_info: each precision's ceiling over float32's, those that count as fast, and on a GPU the
    compute capability's answer beside the measured one."""
    record = {"precision_speedup": dict(speedup), "fast_margin": FAST_MARGIN,
              "fast_precisions": list(fast_precisions(speedup))}
    found = gpu()
    if found is not None:
        record["fast_by_compute_capability"] = list(found.fast_precisions)
    return record


REMOTE_DEVICES = []  # name prefixes of a cluster's other workers' devices (bench.scale sets them)


def sync() -> None:
    """Returns once every device of this host has finished its queued work; a timed region ends here."""
    if not REMOTE_DEVICES:
        tf.test.experimental.sync_devices()
        return
    # what sync_devices does, for this worker's devices only: it fails on a cluster's remote ones
    for found in tf.config.list_logical_devices():
        if not found.name.startswith(tuple(REMOTE_DEVICES)):
            with tf.device(found.name):
                tf.raw_ops.SyncDevice()
    from tensorflow.python.eager import context
    context.async_wait()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_seconds(fn, *args, repeats: int) -> float:
    fn(*args)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def ceiling_probes(precision: str, on_gpu: bool):
    """(name, FLOPs, function, args) of the workloads whose best rate is the ceiling for `precision`.

    Matmuls of two sizes and a 3x3 convolution as in a ResNet's second stage: a single matmul read half of what
    the zoo's convolutions reached on a Zen 4 (107 GFLOP/s at 1024, 211 at 2048, 218-233 for the convolution).
    """
    dtype = COMPUTE_DTYPES[precision]
    uniform = lambda *shape: tf.cast(tf.random.uniform(shape), dtype)  # noqa: E731
    probes = []
    for n in (4096, 8192) if on_gpu else (1024, 2048):
        a = uniform(n, n)
        probes.append((f"matmul {n}x{n}", 2 * n ** 3, tf.matmul, (a, a)))
    batch = 64 if on_gpu else 4
    x, w = uniform(batch, 56, 56, 256), uniform(3, 3, 256, 256)
    probes.append((f"conv3x3 {batch}x56x56x256", 2 * batch * 56 * 56 * 256 * 256 * 9,
                   lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), (x, w)))
    return probes


def measure_peak_flops(precision: str) -> tuple[float, str]:
    """The best FLOP/s of every ceiling probe, with XLA off and on, and the probe that reached it."""
    best, source = 0.0, ""
    for name, flops, fn, args in ceiling_probes(precision, gpu() is not None):
        for xla in (False, True):
            rate = flops / _best_seconds(tf.function(fn, jit_compile=xla), *args, repeats=5)
            if rate > best:
                best, source = rate, f"{name}, XLA {'on' if xla else 'off'}"
    return best, source


def measure_bandwidth() -> float:
    """Bytes/s of an elementwise op over a large buffer: each element read once and written once."""
    x = tf.random.uniform((64 if gpu() else 16, 2 ** 20, 4))  # 1 GiB on a GPU, 256 MiB on a CPU
    add_one = tf.function(lambda t: t + 1.0)
    return 2 * x.shape.num_elements() * 4 / _best_seconds(add_one, x, repeats=5)


class Peaks:
    """The ceilings: measured on first use, measured again by `remeasure` at the end of the session, the higher kept.

    A probe timed while anything else runs reads low (half its value, seen at a session's start), and MFU over a
    low ceiling reads above 100%.
    """

    def __init__(self):
        self._flops: dict[str, float] = {}
        self._probe: dict[str, str] = {}
        self._measurements: dict[str, list[float]] = {}
        self._bandwidth: float | None = None
        self._canary = None

    def _measure(self, precision: str) -> None:
        rate, probe = measure_peak_flops(precision)
        self._measurements.setdefault(precision, []).append(rate)
        if rate > self._flops.get(precision, 0.0):
            self._flops[precision], self._probe[precision] = rate, probe

    def flops(self, precision: str) -> float:
        if precision not in self._flops:
            self._measure(precision)
        return self._flops[precision]

    def bandwidth(self) -> float:
        if self._bandwidth is None:
            self._bandwidth = measure_bandwidth()
        return self._bandwidth

    def speed_now(self) -> float:
        """FLOP/s of the smallest float32 probe now, best of 3: how fast the machine runs at this moment.

        Taken beside every case, its spread over a session is the drift of a shared machine, which the spread
        within a case does not show and which `--compare` must allow for between runs.
        """
        if self._canary is None:
            _, flops, fn, args = ceiling_probes("float32", gpu() is not None)[0]
            self._canary = (flops, tf.function(fn), args)
        flops, fn, args = self._canary
        return flops / _best_seconds(fn, *args, repeats=3)

    def remeasure(self, precisions=None) -> None:
        for precision in precisions or list(self._flops):
            self._measure(precision)
        if self._bandwidth is not None:
            self._bandwidth = max(self._bandwidth, measure_bandwidth())

    def record(self) -> dict:
        return {"peak_flops_per_s": dict(self._flops), "peak_probe": dict(self._probe),
                "peak_flops_measurements": {p: list(v) for p, v in self._measurements.items()},
                "peak_bandwidth_bytes_per_s": self._bandwidth}


def machine_info(peaks: Peaks) -> dict:
    import keras

    info = {
        "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(), "device": device_name(),
        "cpu_model": cpu_model(), "cpu_cores_logical": psutil.cpu_count(), "cpu_cores_physical":
        psutil.cpu_count(logical=False), "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "tf_environment": {k: v for k, v in sorted(os.environ.items())
                           if k.startswith(("TF_", "XLA_")) and not k.startswith(TERRAFORM_PREFIXES)},
        "gpus": [],
    }
    build = tf.sysconfig.get_build_info()
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        info["gpus"].append({"name": details.get("device_name"),
                             "compute_capability": list(details.get("compute_capability", ())),
                             "cuda_version": build.get("cuda_version"), "cudnn_version": build.get("cudnn_version"),
                             "driver_version": _nvidia_driver()})
    info.update(peaks.record())
    return info


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().split("Kernel Module")[-1].split()[0]
    except (OSError, IndexError):
        return None
