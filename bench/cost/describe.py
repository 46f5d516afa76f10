"""`python -m bench.describe NAME ...`: parameters, MACs, FLOPs and memory of models, optionally per layer."""
from __future__ import annotations

import json
import sys

from models.registry import shape_text

from ..core.cli import ArgumentParser, UsageError, parse_shape
from ..core.records import MIB
from ..engines import start

SUMMARY_HEADERS = ("model", "input", "params", "trainable", "MACs", "FLOPs", "training FLOPs",
                   "activations (MiB/sample)", "weights (MiB)")
LAYER_HEADERS = ("layer", "type", "output", "params", "trainable", "MACs", "FLOPs", "activations (bytes)")


def summary_row(cost) -> tuple:
    return (cost.name, shape_text(cost.input_shape), cost.params, cost.trainable_params, cost.macs, cost.flops,
            cost.training_flops, round(cost.activation_bytes / MIB, 2), round(cost.model_bytes / MIB, 2))


def layer_rows(cost):
    return [(layer.name, layer.type, shape_text(layer.output_shape), layer.params, layer.trainable_params, layer.macs,
             layer.flops, layer.activation_bytes) for layer in cost.layers]


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.describe", description=(
        "What models cost per sample: parameters, MACs (multiply-accumulates), FLOPs (2 per MAC plus bias, "
        "BatchNorm, activations, pooling, adds), training FLOPs (3x forward) and memory."))
    parser.add_argument("names", nargs="+", metavar="NAME", help="model names or wildcards ('resnet*')")
    parser.add_argument("--input-shape", type=str, metavar="H,W,C", help="input shape instead of each default")
    parser.add_argument("--layers", action="store_true", help="add the per-layer table")
    parser.add_argument("--json", action="store_true", help="print a JSON list of per-model records")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    shape = parse_shape(args.input_shape) if args.input_shape else None
    start()
    import keras
    from tabulate import tabulate

    import models

    from .counts import model_cost
    try:
        chosen = models.select(args.names)
    except ValueError as err:
        raise UsageError(err) from None
    costs = []
    for name in chosen:
        try:
            cost = model_cost(models.build(name, input_shape=shape))
        except ValueError as err:
            raise UsageError(err) from None
        keras.backend.clear_session()
        for layer in cost.unknown_layers:
            print(f"warning: {name}: layer {layer} is of a type the cost model does not know; counted as 0",
                  file=sys.stderr)
        costs.append(cost)
        if args.layers and not args.json:
            print(f"\n{name} ({shape_text(cost.input_shape)}), per sample")
            print(tabulate(layer_rows(cost), headers=LAYER_HEADERS, intfmt=","))
    if args.json:
        print(json.dumps([cost.summary() for cost in costs], indent=2))
    else:
        if args.layers:
            print()
        print(tabulate([summary_row(c) for c in costs], headers=SUMMARY_HEADERS, intfmt=",", floatfmt=",.2f"))
    return 0

