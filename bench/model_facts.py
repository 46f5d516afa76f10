"""Each model's layer count, parameters and FLOPs per sample at both input sizes, kept in model_facts.json.

A run plans its time budget from these before it builds anything: building the whole zoo to count it took 35 s on
a 2-core CPU. tests/test_models.py checks the file against fresh builds; `python -m bench.model_facts` rewrites it.
"""
from __future__ import annotations

import json
import os
import sys

from .plan import ModelFacts

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_facts.json")
INPUT_SIZES = ("default", "small")


def facts_of(cost) -> dict:
    return {"layers": len(cost.layers), "params": cost.params, "flops": cost.flops,
            "training_flops": cost.training_flops}


def measure(name: str, input_size: str) -> dict:
    """Build the model (TensorFlow and Keras imported here) and count it."""
    import keras

    import models
    from .cost import model_cost

    shape = models.entry(name).small_input_shape if input_size == "small" else None
    try:
        return facts_of(model_cost(models.build(name, input_shape=shape)))
    finally:
        keras.backend.clear_session()


def load(path: str = PATH) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def lookup(names, input_size: str, path: str = PATH) -> dict[str, ModelFacts]:
    """name -> ModelFacts; a model missing from the file (one added since) is built and counted."""
    table = load(path)
    found = {}
    for name in names:
        record = table.get(name, {}).get(input_size) or measure(name, input_size)
        found[name] = ModelFacts(**record)
    return found


def main() -> int:
    from .cli import quiet_start
    quiet_start()
    import models

    table = {name: {size: measure(name, size) for size in INPUT_SIZES} for name in models.names()}
    from .report import atomic_write
    atomic_write(PATH, json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH}: {len(table)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
