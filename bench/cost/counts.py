"""What a model costs on paper, layer by layer: parameters, MACs, FLOPs and activation memory.

Counting conventions (per sample, forward pass, inference mode):
- MACs: multiply-accumulates of Conv2D, DepthwiseConv2D and Dense, as the papers, fvcore and ptflops count them.
- FLOPs: every floating-point operation. A MAC is 2 FLOPs; a bias add is 1 per output element; an activation is
  1 per element (softmax 3: exp, sum, divide); BatchNorm 2 per element (scale and shift folded, as inference
  runs it); pooling k*k per output element (comparisons or adds); global pooling 1 per input element; an add of
  n tensors n-1 per element. Concatenate, Flatten, Dropout, padding and reshapes move data and count 0.
- Training FLOPs: forward + backward, with the backward taken as 2x the forward (one product for the gradient
  of the input, one for the gradient of the weights), so 3x forward. The first trainable layer needs no gradient
  of its input, so its backward leaves out one product (2 FLOPs per MAC): a lone convolution costs 2x its
  forward plus its bias and activation terms. Layers before it (a frozen trunk) need no backward and count once.
  The optimizer update and BatchNorm's batch statistics are left out.
- Activation memory: bytes of every layer's output at the layer's compute dtype.
A layer type not listed here is reported in `unknown_layers`, never counted as zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
from keras import layers

ACTIVATION_FLOPS = {"linear": 0, "softmax": 3}  # per element; every other activation counts 1
DATA_MOVEMENT = (layers.InputLayer, layers.Flatten, layers.Dropout, layers.Concatenate, layers.ZeroPadding2D,
                 layers.Reshape, layers.Identity)


@dataclass(frozen=True)
class LayerCost:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    macs: int
    flops: int
    activation_bytes: int


@dataclass(frozen=True)
class ModelCost:
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerCost, ...]
    training_flops: int
    model_bytes: int
    unknown_layers: tuple[str, ...] = field(default=())

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def activation_bytes(self) -> int:
        return sum(layer.activation_bytes for layer in self.layers)

    def summary(self) -> dict:
        """A flat record, per sample at batch 1; units in the key names where they are not counts."""
        return {"name": self.name, "input_shape": list(self.input_shape), "params": self.params,
                "trainable_params": self.trainable_params, "macs": self.macs, "flops": self.flops,
                "training_flops": self.training_flops, "activation_bytes": self.activation_bytes,
                "model_bytes": self.model_bytes, "unknown_layers": list(self.unknown_layers)}


def _elements(shape) -> int:
    return math.prod(int(d) for d in shape)


def _activation_name(fn) -> str:
    # Keras's activations are functions of their name; keras.activations.serialize imported TensorFlow on JAX
    return getattr(fn, "__name__", "unknown") if fn is not None else "linear"


def _activation_flops(fn, out_elements: int) -> int:
    return ACTIVATION_FLOPS.get(_activation_name(fn), 1) * out_elements


def _weighted(layer, macs: int, out_elements: int) -> tuple[int, int]:
    bias = out_elements if getattr(layer, "use_bias", False) else 0
    return macs, 2 * macs + bias + _activation_flops(getattr(layer, "activation", None), out_elements)


def _layer_macs_flops(layer, in_shapes, out_shape) -> tuple[int, int] | None:
    """(MACs, FLOPs) per sample, or None for a layer type this model does not know."""
    out = _elements(out_shape)
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _weighted(layer, out * kh * kw, out)
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return _weighted(layer, out * kh * kw * in_shapes[0][-1] // layer.groups, out)
    if isinstance(layer, layers.Dense):
        return _weighted(layer, out * in_shapes[0][-1], out)
    if isinstance(layer, layers.BatchNormalization):
        return 0, 2 * out
    if isinstance(layer, layers.Activation):
        return 0, _activation_flops(layer.activation, out)
    if isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        return 0, out * math.prod(layer.pool_size)
    if isinstance(layer, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
        return 0, _elements(in_shapes[0])
    if isinstance(layer, (layers.Add, layers.Multiply, layers.Subtract, layers.Maximum, layers.Minimum)):
        return 0, (len(in_shapes) - 1) * out
    if isinstance(layer, DATA_MOVEMENT):
        return 0, 0
    return None


def _shapes(tensors) -> list[tuple[int, ...]]:
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    return [tuple(t.shape[1:]) for t in tensors]


def _weight_count(weights) -> int:
    return sum(_elements(w.shape) for w in weights)


def _walk(model: keras.Model, prefix: str = ""):
    """(qualified name, layer) for every leaf layer, nested models expanded, in topological order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


def model_cost(model: keras.Model) -> ModelCost:
    rows, unknown = [], []
    backward_flops, reached_trainable = 0, False
    for name, layer in _walk(model):
        out_shapes = _shapes(layer.output)
        counted = _layer_macs_flops(layer, _shapes(layer.input), out_shapes[0])
        if counted is None:
            unknown.append(f"{name} ({type(layer).__name__})")
            counted = (0, 0)
        activation_bytes = (0 if isinstance(layer, layers.InputLayer)
                            else sum(map(_elements, out_shapes)) * _itemsize(layer.compute_dtype))
        trainable = _weight_count(layer.trainable_weights)
        rows.append(LayerCost(name, type(layer).__name__, out_shapes[0], _weight_count(layer.weights), trainable,
                              counted[0], counted[1], activation_bytes))
        if reached_trainable:
            backward_flops += 2 * counted[1]
        elif trainable > 0:  # the first trainable layer: no gradient of its input
            backward_flops += 2 * counted[1] - 2 * counted[0]
            reached_trainable = True
    total_flops = sum(r.flops for r in rows)
    model_bytes = sum(_elements(w.shape) * _itemsize(w.dtype) for w in model.weights)
    return ModelCost(model.name, tuple(model.input_shape[1:]), tuple(rows),
                     training_flops=total_flops + backward_flops, model_bytes=model_bytes,
                     unknown_layers=tuple(unknown))


def _itemsize(dtype) -> int:
    return {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[keras.backend.standardize_dtype(dtype)]
