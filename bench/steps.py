"""What one case runs: the model under its dtype policy, and its steps kept for every batch size (the steps
themselves are the engine's: bench.engines)."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import keras

import models
from .cost import ModelCost, model_cost
from .engines import current as engine


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
            with dtype_policy(precision), (strategy.scope() if strategy is not None else nullcontext()):
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
        engine().clear()
