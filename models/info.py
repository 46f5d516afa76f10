"""Facts about a built model that the registry table shows: parameter counts and depth."""
from __future__ import annotations

import keras

WEIGHTED_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def parameter_counts(model: keras.Model) -> tuple[int, int]:
    """(total, trainable); the total includes BatchNorm moving statistics, as Keras counts them."""
    trainable = sum(_size(w) for w in model.trainable_weights)
    return int(model.count_params()), trainable


def _size(weight) -> int:
    size = 1
    for dim in weight.shape:
        size *= int(dim)
    return size


def depth(model: keras.Model) -> int:
    """Weighted layers (conv, dense) on the longest path from input to output: 50 for ResNet-50, 16 for VGG-16.

    Projection shortcuts and parallel towers do not add to it, which is how the papers count depth.
    """
    memo: dict[int, int] = {}

    def node_depth(node) -> int:
        key = id(node)
        if key not in memo:
            op = node.operation
            own = depth(op) if isinstance(op, keras.Model) else int(isinstance(op, WEIGHTED_LAYERS))
            memo[key] = own + max((node_depth(p) for p in node.parent_nodes), default=0)
        return memo[key]

    outputs = model.outputs
    return max(node_depth(t._keras_history.operation._inbound_nodes[t._keras_history.node_index]) for t in outputs)
