"""What one case runs: the model under its dtype policy, synthetic data on the device, the compiled step."""
from __future__ import annotations

import contextlib
import gc
from contextlib import contextmanager

import keras
import tensorflow as tf

import models
from .cost import ModelCost, model_cost


@contextmanager
def dtype_policy(name: str):
    """Layers keep the policy they were built under, so building inside this leaves global state as it was."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class ModelCache:
    """Holds one built model: the cases of a (model, precision, input) share it; the next one frees it."""

    def __init__(self):
        self._key = None
        self._value: tuple[keras.Model, ModelCost] | None = None
        self._steps: dict = {}

    def get(self, name: str, precision: str, input_size: str, strategy=None) -> tuple[keras.Model, ModelCost]:
        """The model, its variables mirrored on the replicas of `strategy` when one is given."""
        key = (name, precision, input_size, id(strategy))
        if key != self._key:
            self.clear()
            shape = models.entry(name).small_input_shape if input_size == "small" else None
            with dtype_policy(precision), _scope(strategy):
                model = models.build(name, input_shape=shape)
            self._key, self._value = key, (model, model_cost(model))
        return self._value

    def step(self, key, make):
        """(step, whether it is new): one traced step per key, for every batch size of the built model."""
        if key in self._steps:
            return self._steps[key], False
        self._steps[key] = make()
        return self._steps[key], True

    def clear(self) -> None:
        self._key = self._value = None
        self._steps = {}
        keras.backend.clear_session()
        _drop_custom_gradients()
        gc.collect()


def _drop_custom_gradients() -> None:
    """Unpin the graphs of finished training steps, which clear_session leaves alive.

    Tracing a training step registers a `CustomGradient-N` in TensorFlow's global gradient registry; its closure
    holds the step's graph and through it the model's weights and optimizer slots (tensorflow#80895, still open
    in 2.21). Without this a run of the zoo kept 10 GiB of dead models and slowed down as it went.
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if isinstance(registry, dict):
        for name in [name for name in registry if name.startswith("CustomGradient-")]:
            del registry[name]


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def synthetic_batch(model: keras.Model, batch_size: int, strategy=None):
    """Random inputs and targets, made on the device before any timing; under a strategy, `batch_size` of each on
    every replica's device."""
    def make(_context=None):
        x = tf.random.uniform((batch_size, *model.input_shape[1:]))
        out_shape = model.output_shape
        if len(out_shape) == 2:  # a classifier: integer labels
            y = tf.random.uniform((batch_size,), maxval=out_shape[-1], dtype=tf.int32)
        else:  # a feature-map model: a regression target of its output's shape
            y = tf.random.uniform((batch_size, *out_shape[1:]))
        return x, y

    if strategy is None:
        return make()
    return tuple(strategy.experimental_distribute_values_from_function(lambda context, i=i: make(context)[i])
                 for i in range(2))


def batch_signature(model: keras.Model) -> list[tf.TensorSpec]:
    """The step's inputs with the batch left open: one trace serves every batch size (a second batch size's first
    call fell from 1.35 s to 0.43 s for ResNet-50, at the same step time), and XLA compiles each shape it meets."""
    out_shape = model.output_shape
    y = (tf.TensorSpec((None,), tf.int32) if len(out_shape) == 2 else tf.TensorSpec((None, *out_shape[1:])))
    return [tf.TensorSpec((None, *model.input_shape[1:])), y]


def _compiled(replica_step, model: keras.Model, xla: bool, strategy):
    """One step: on its own, or run by every replica of `strategy` (whose inputs are per-replica values, so no
    input signature; bench.matrix keeps XLA off there)."""
    if strategy is None:
        return tf.function(replica_step, jit_compile=xla, input_signature=batch_signature(model))
    return tf.function(lambda x, y: strategy.run(replica_step, args=(x, y)))


def inference_step(model: keras.Model, *, xla: bool, strategy=None):
    def step(x, y):
        return model(x, training=False)
    return _compiled(step, model, xla, strategy)


def training_step(model: keras.Model, *, xla: bool, precision: str, strategy=None):
    """Forward with training=True, loss, gradients, SGD-with-momentum update; loss scaling under float16. Under a
    strategy a Keras loss is already divided by the replicas, and the optimizer all-reduces the sum of their
    gradients: the gradient of the global batch's mean loss (tests/test_scale.py checks it)."""
    with _scope(strategy):
        optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    loss_fn = (keras.losses.SparseCategoricalCrossentropy() if len(model.output_shape) == 2
               else keras.losses.MeanSquaredError())

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return _compiled(step, model, xla, strategy)
