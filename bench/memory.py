"""Peak memory of a case from the device allocator (TensorFlow's BFC allocator on the CPU too)."""
from __future__ import annotations

import os

import tensorflow as tf

# TensorFlow reads this when it starts: bench/conftest.py imports this module before TensorFlow is imported.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


def _device() -> str:
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def reset_peak() -> None:
    try:
        tf.config.experimental.reset_memory_stats(_device())
    except (ValueError, RuntimeError):
        pass  # an allocator without statistics: peak_bytes() says None


def peak_bytes() -> int | None:
    try:
        return int(tf.config.experimental.get_memory_info(_device())["peak"])
    except (ValueError, RuntimeError):
        return None
