"""TensorFlow's own FLOP count of a model's traced forward graph: the cross-check for `bench.cost`."""
from __future__ import annotations

import tensorflow as tf

# TensorFlow's op types that hold the MACs of `bench.cost` (2 FLOPs each).
MAC_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def tensorflow_flops(model, batch_size: int = 1) -> dict[str, int]:
    """FLOPs per TensorFlow op type, as the v1 profiler counts them on the traced inference graph.

    The graph is not frozen: the profiler needs only static shapes, and freezing took 16 of resnet152's 25 s for the
    same counts. It counts 0 for Relu, Pad and FusedBatchNorm, so only `MAC_OPS` are comparable with our count.
    """
    spec = tf.TensorSpec([batch_size, *model.input_shape[1:]], model.inputs[0].dtype)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    root = tf.compat.v1.profiler.profile(concrete.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=options)
    counts, pending = {}, list(root.children)
    while pending:  # the "op" view nests each op type under the previous one; float_ops is the type's own count
        node = pending.pop()
        counts[node.name] = counts.get(node.name, 0) + int(node.float_ops)
        pending.extend(node.children)
    return counts


def tensorflow_mac_flops(model, batch_size: int = 1) -> int:
    counts = tensorflow_flops(model, batch_size)
    return sum(counts.get(op, 0) for op in MAC_OPS)
