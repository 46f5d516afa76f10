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

Keras binds one backend per process, so the engine is the backend Keras was started with.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

MODULES = {"tensorflow": "tensorflow_engine", "jax": "jax_engine"}
BACKEND_VARIABLE = "KERAS_BACKEND"


def check_backend(name: str) -> str:
    if name not in MODULES:
        raise ValueError(f"backend {name!r}: cnnbench runs on {', '.join(MODULES)}")
    return name


@lru_cache(maxsize=None)
def current():
    """The engine module of the backend Keras runs on."""
    import keras

    return importlib.import_module(f"{__name__}.{MODULES[check_backend(keras.backend.backend())]}")
