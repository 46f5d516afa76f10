"""Deployment runtimes: a model exported by Keras itself (`model.export`) and served for inference on the CPU by
LiteRT (XNNPACK), ONNX Runtime or OpenVINO, beside the Keras backend's own steps.

Each runtime module (`litert`, `onnx`, `openvino`) defines:
- NAME (as in a case id), LABEL, FORMAT (Keras's export format), FILE (the artifact's name), PACKAGES to import,
  COMPILES: what the runtime does once, where TensorFlow has XLA (it has no XLA axis)
- `versions()`: its own version and its converter's, which key the export cache (bench.engines.runtimes.exports)
- `refuses(params)`: why it cannot export a model of that many parameters here, or None
- `export(model, path, precision, calibration)`: writes the artifact (int8: the runtime's own post-training
  quantizer, calibrated on `calibration`, a list of batches)
- `Session(path, threads)`: `session(x) -> output` (numpy in, numpy out, finished on return), `executed_precision`
- `profile(path, threads, x, steps, folder) -> [(op name, op type, total self us)]`, its own profiler's file left
  in `folder`; `NO_PROFILE` instead where the runtime has no per-op profiler in Python
"""
from __future__ import annotations

import importlib
import importlib.util
import os

from ...core.records import KERAS  # noqa: F401  (the runtime every deployment runtime is compared with)

RUNTIMES = ("litert", "onnxruntime", "openvino")
MODULES = {"litert": "litert", "onnxruntime": "onnx", "openvino": "openvino"}
PRECISIONS = ("float32", "int8")
EXTRA = "deploy"  # pip install -e '.[deploy]'


def module(name: str):
    return importlib.import_module(f"{__name__}.{MODULES[name]}")


def missing(name: str) -> list[str]:
    """The packages of runtime `name` that are not installed (found without importing them)."""
    return [package for package in module(name).PACKAGES if importlib.util.find_spec(package) is None]


def installed() -> tuple[str, ...]:
    return tuple(name for name in RUNTIMES if not missing(name))


def threads() -> int:
    """The cores this process may use: what TensorFlow's thread pools take by default, and so each runtime's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class RuntimeStep:
    """A runtime's inference as a step of the harness: `step(x, y)`, with the session made on its first call (which
    is timed as the case's first call, as a TensorFlow step's tracing is). It has finished its work when it
    returns, so its `wait` does nothing."""

    def __init__(self, runtime, path: str, threads: int):
        self.runtime, self.path, self.threads = runtime, path, threads
        self.session = None

    def __call__(self, x, y=None):
        if self.session is None:
            self.session = self.runtime.Session(self.path, self.threads)
        return self.session(x)

    @staticmethod
    def wait(result=None) -> None:
        return None
