"""The counts in models/facts.json, which a run plans from before it builds anything, and the command that
rewrites them: `python -m bench.cost.facts`."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from models.facts import PATH, load
from models.registry import INPUT_SIZES

from ..core.files import atomic_write


@dataclass(frozen=True)
class ModelFacts:
    """What the planner knows of a model before it is built: per sample, at the run's input size."""
    layers: int
    params: int
    flops: float
    training_flops: float


def facts_of(model) -> dict:
    from models.info import depth

    from .counts import model_cost

    cost = model_cost(model)
    return {"layers": len(cost.layers), "params": cost.params, "trainable_params": cost.trainable_params,
            "depth": depth(model), "flops": cost.flops, "training_flops": cost.training_flops}


def measure(name: str, input_size: str) -> dict:
    """Build the model (Keras imported here) and count it."""
    import keras

    import models
    try:
        return facts_of(models.build(name, input_shape=models.input_shape(name, input_size)))
    finally:
        keras.backend.clear_session()


def lookup(names, input_size: str, path: str = PATH) -> dict[str, ModelFacts]:
    """name -> ModelFacts; a model missing from the file (one added since) is built and counted."""
    table = load(path)
    found = {}
    for name in names:
        record = table.get(name, {}).get(input_size) or measure(name, input_size)
        found[name] = ModelFacts(**{key: record[key] for key in ModelFacts.__dataclass_fields__})
    return found


def main() -> int:
    from ..engines import start
    start()
    import models

    table = {name: {size: measure(name, size) for size in INPUT_SIZES} for name in models.names()}
    atomic_write(PATH, json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH}: {len(table)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
