"""The device a run measures on: what it is, and its measured peak FLOP/s and bandwidth."""
from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from functools import cache

import psutil

from models.quiet import held_stderr

from ..engines import current as engine

TERRAFORM_PREFIXES = ("TF_CLI_", "TF_VAR_", "TF_LOG", "TF_PLUGIN_", "TF_DATA_DIR", "TF_IN_AUTOMATION",
                      "TF_INPUT", "TF_WORKSPACE")  # other tools' variables that share the TF_ prefix
COMPUTE_DTYPES = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


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


@cache
def gpu() -> Gpu | None:
    found = engine().gpus()
    return Gpu(found[0]["name"], tuple(found[0]["compute_capability"])) if found else None


def gpu_count() -> int:
    return len(engine().gpus())


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
    engine().wait(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        engine().wait(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def ceiling_probes(precision: str, on_gpu: bool):
    """(name, FLOPs, function, args) of the workloads whose best rate is the ceiling for `precision`.

    Matmuls of two sizes and a 3x3 convolution as in a ResNet's second stage: a single matmul read half of what
    the zoo's convolutions reached on a Zen 4 (107 GFLOP/s at 1024, 211 at 2048, 218-233 for the convolution).
    """
    ops, dtype = engine(), COMPUTE_DTYPES[precision]
    probes = []
    for n in (4096, 8192) if on_gpu else (1024, 2048):
        a = ops.uniform((n, n), dtype)
        probes.append((f"matmul {n}x{n}", 2 * n ** 3, ops.matmul, (a, a)))
    batch = 64 if on_gpu else 4
    x, w = ops.uniform((batch, 56, 56, 256), dtype), ops.uniform((3, 3, 256, 256), dtype)
    probes.append((f"conv3x3 {batch}x56x56x256", 2 * batch * 56 * 56 * 256 * 256 * 9, ops.conv3x3, (x, w)))
    return probes


def measure_peak_flops(precision: str) -> tuple[float, str]:
    """The best FLOP/s of every ceiling probe, with XLA off and on (where the engine has both), and the probe that
    reached it. The probes run before pytest captures anything: a kernel's first run in a precision can print the
    backend's notices (oneDNN's "supports DT_HALF only on platforms with AVX-512" on a Zen 4), held back here."""
    best, source = 0.0, ""
    with held_stderr():
        for name, flops, fn, args in ceiling_probes(precision, gpu() is not None):
            for xla in engine().XLA_SETTINGS:
                rate = flops / _best_seconds(engine().probe(fn, xla), *args, repeats=5)
                if rate > best:
                    best, source = rate, f"{name}, XLA {'on' if xla else 'off'}"
    return best, source


def measure_bandwidth() -> float:
    """Bytes/s of an elementwise op over a large buffer: each element read once and written once."""
    shape = (64 if gpu() else 16, 2 ** 20, 4)  # 1 GiB on a GPU, 256 MiB on a CPU
    x = engine().uniform(shape, "float32")
    return 2 * math.prod(shape) * 4 / _best_seconds(engine().probe(engine().add_one, False), x, repeats=5)


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

    @classmethod
    def given(cls, record: dict) -> Peaks:
        """Ceilings another process measured (`record()`), taken as this one's: a worker process probes nothing."""
        peaks = cls()
        peaks._flops, peaks._probe = dict(record["peak_flops_per_s"]), dict(record["peak_probe"])
        peaks._measurements = {p: list(v) for p, v in record["peak_flops_measurements"].items()}
        peaks._bandwidth = record.get("peak_bandwidth_bytes_per_s")
        return peaks

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
            self._canary = (flops, engine().probe(fn, False), args)
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
        "keras_backend": engine().NAME, **engine().versions(),
        "keras_version": keras.__version__, "device": device_name(),
        "cpu_model": cpu_model(), "cpu_cores_logical": psutil.cpu_count(), "cpu_cores_physical":
        psutil.cpu_count(logical=False), "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "tf_environment": {k: v for k, v in sorted(os.environ.items())
                           if k.startswith(("TF_", "XLA_", "JAX_", "KERAS_")) and not k.startswith(TERRAFORM_PREFIXES)},
        "gpus": [{**found, "driver_version": _nvidia_driver()} for found in engine().gpus()],
    }
    info.update(peaks.record())
    return info


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().split("Kernel Module")[-1].split()[0]
    except (OSError, IndexError):
        return None
