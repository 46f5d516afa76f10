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
    """The models of the name at hand, one per precision (a case is timed beside its float32 twin), and their steps,
    each kept for every batch size; the next name, input size or strategy frees them all, but for a model it is told
    to keep (a cost example's first module, timed beside the second)."""

    def __init__(self):
        self._where = None  # (name, input size, strategy) of the models at hand
        self._models: dict[tuple, tuple[keras.Model, ModelCost]] = {}  # (where, precision) -> (model, its cost)
        self._steps: dict = {}  # step key, the model's name first -> step

    def get(self, name: str, precision: str, input_size: str, strategy=None,
            keep: str | None = None) -> tuple[keras.Model, ModelCost]:
        """The model, its variables mirrored on the replicas of `strategy` when one is given."""
        where = (name, input_size, id(strategy))
        if where != self._where:
            kept = {where, (keep, input_size, id(strategy))}
            if not any(w in kept for w, _ in self._models):
                self.clear()
            else:  # the kept model's steps stay traced; the engine's session is not cleared under them
                self._models = {key: m for key, m in self._models.items() if key[0] in kept}
                self._steps = {key: s for key, s in self._steps.items() if key[0] in {name, keep}}
            self._where = where
        if (where, precision) not in self._models:
            with dtype_policy(precision), (strategy.scope() if strategy is not None else nullcontext()):
                model = models.build(name, input_shape=models.input_shape(name, input_size))
            self._models[where, precision] = (model, model_cost(model))
        return self._models[where, precision]

    def built_model(self, name: str, precision: str, input_size: str, strategy=None) -> keras.Model:
        """A model already built and kept (a cost example's first module, beside the second): nothing is freed."""
        return self._models[(name, input_size, id(strategy)), precision][0]

    def step(self, key, make):
        """(step, whether it is new): one traced step per key, for every batch size of the built model."""
        if key in self._steps:
            return self._steps[key], False
        self._steps[key] = make()
        return self._steps[key], True

    def built_step(self, key):
        """The step already made for `key`, or None: a twin is paired only where that costs no new trace."""
        return self._steps.get(key)

    def clear(self) -> None:
        self._where, self._models, self._steps = None, {}, {}
        engine().clear()
