"""What every engine's steps and traces share: the dtype policy, the training recipe, the trace layout and its top
operations."""
from __future__ import annotations

import glob
import os
from contextlib import contextmanager

import keras

TOP_OPS = 10


@contextmanager
def dtype_policy(name: str):
    """Layers keep the policy they were built under, so building inside this leaves global state as it was."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def is_classifier(model: keras.Model) -> bool:
    """A classifier (batch, classes) trains on integer labels; a feature-map model on a target of its output's shape."""
    return len(model.output_shape) == 2


def training_recipe(model: keras.Model, precision: str):
    """(optimizer, loss) of every engine's training step: SGD with momentum, loss scaling under float16, and the loss
    the model's output calls for (integer labels for a classifier, a regression target for a feature map)."""
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    loss_fn = (keras.losses.SparseCategoricalCrossentropy() if is_classifier(model)
               else keras.losses.MeanSquaredError())
    return optimizer, loss_fn


def xplane_files(logdir: str) -> list[str]:
    """The profiler's files under a trace folder, in TensorBoard's layout."""
    return sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))


def top_ops(rows, steps: int, limit: int = TOP_OPS) -> list[dict]:
    """The `limit` operations with the most self time, per step, from (name, type, total self time in us, where)."""
    total = sum(row[2] for row in rows) or 1.0
    rows = sorted(rows, key=lambda row: row[2], reverse=True)[:limit]
    return [{"name": name, "type": kind, "self_time_us": self_us / steps, "share": self_us / total, "where": where}
            for name, kind, self_us, where in rows]
