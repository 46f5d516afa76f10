"""The built model of the cases at hand, under its dtype policy, and its steps kept for every batch size (the steps
themselves are the engine's: bench.engines)."""
from __future__ import annotations

from contextlib import nullcontext

import keras

import models

from ..cost.counts import ModelCost, model_cost
from ..engines import current as engine
from ..engines.shared import dtype_policy


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
            with dtype_policy(precision), (strategy.scope() if strategy is not None else nullcontext()):
                model = models.build(name, input_shape=models.input_shape(name, input_size))
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
