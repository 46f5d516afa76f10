"""Peak memory of a case from the device allocator (TensorFlow's BFC allocator on the CPU too).

The CPU's statistics need TF_CPU_ALLOCATOR_USE_BFC=true before TensorFlow starts: `bench.cli.quiet_tensorflow` sets it.
"""
from __future__ import annotations

import tensorflow as tf


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
