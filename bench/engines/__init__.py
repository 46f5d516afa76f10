"""One seam per engine: everything that differs between TensorFlow and JAX, behind the same few functions.

Each engine module (`tensorflow_engine`, `jax_engine`) defines:
- NAME; `versions()` for the machine record; `gpus()`: a dict per GPU it sees (name, compute_capability, ...)
- `inference_step(model, *, xla, strategy=None)` and `training_step(model, *, xla, precision, strategy=None)`:
  a step `step(x, y) -> result`; `synthetic_batch(model, batch_size, strategy=None) -> (x, y)` on the device
- `wait(result)`: returns once the device has finished the work that made `result` (a timed region ends here)
- `unsupported(case)`: why the engine cannot run a case, or None
- `out_of_memory(err)`: whether an exception is the device running out of memory
- `reset_peak_memory()`, `peak_memory()` -> (bytes or None, a note saying why None)
- `record_trace(logdir, mode, step, args, steps)` in TensorBoard's layout, `read_top_ops(logdir, steps, limit)`
- `XLA_SETTINGS`: the XLA settings it has (off first); `probe(fn, xla)`: a compiled probe; `matmul`, `conv3x3`,
  `add_one`, `uniform`: its ceiling probes' operations
- `clear()`: free the models and steps built so far

Keras binds one backend per process, so the engine is the backend Keras was started with (`start`). tf.distribute,
TensorFlow's own way to scale out, is `distribute`; what the engines share is `shared`.
"""
from __future__ import annotations

import os
import sys
from functools import cache

from ..core.cli import UsageError

BACKEND_VARIABLE = "KERAS_BACKEND"
BACKENDS = ("tensorflow", "jax")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r}: cnnbench runs on {', '.join(BACKENDS)}")
    return name


def environment(backend: str | None = None) -> str:
    """The environment Keras and TensorFlow must find when they are first imported, set without importing them; the
    backend asked for. Raises UsageError for a backend cnnbench does not run."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # allocator statistics (peak memory) on the CPU too
    try:
        return check_backend(backend or os.environ.get(BACKEND_VARIABLE) or "tensorflow")
    except ValueError as err:
        raise UsageError(str(err)) from None


def start(backend: str | None = None) -> None:
    """Import Keras on its backend (`backend`, else KERAS_BACKEND, else TensorFlow) and find the devices, with the
    backend's C++ start-up lines held back (models.quiet). Raises UsageError for a backend cnnbench does not run,
    or another than the one Keras already runs."""
    wanted = environment(backend)
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != wanted:
            raise UsageError(f"backend {wanted!r}: Keras already runs on {running!r} in this process")
        return
    os.environ[BACKEND_VARIABLE] = wanted
    from models.quiet import held_stderr

    with held_stderr():
        current().gpus()  # Keras starts, and the devices are found, while the start-up lines are held


@cache
def current():
    """The engine module of the backend Keras runs on."""
    import keras

    if check_backend(keras.backend.backend()) == "jax":
        from . import jax_engine
        return jax_engine
    from . import tensorflow_engine
    return tensorflow_engine
