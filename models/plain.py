"""Plain stacks of convolutions and pools with a fully connected head: LeNet-5, AlexNet, VGG."""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from .layers import input_layer
from .ops import Conv, Layout, Pool, build_layout
from .registry import register


@dataclass(frozen=True)
class PlainSpec:
    layout: Layout
    fc: tuple[int, ...]  # widths of the hidden dense layers
    activation: str
    dropout: float  # after each hidden dense layer


def _plain_conv(activation: str):
    def unit(x, op: Conv, *, name: str):
        return layers.Conv2D(op.filters, op.kernel, strides=op.stride, padding=op.padding,
                             activation=activation, name=name)(x)
    return unit


def build_plain(spec: PlainSpec, *, input_shape, num_classes: int, name: str) -> keras.Model:
    inputs = input_layer(input_shape)
    x = build_layout(inputs, spec.layout, conv_unit=_plain_conv(spec.activation))
    x = layers.Flatten(name="flatten")(x)
    for i, width in enumerate(spec.fc, start=1):
        x = layers.Dense(width, activation=spec.activation, name=f"fc{i}")(x)
        if spec.dropout:
            x = layers.Dropout(spec.dropout, name=f"fc{i}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


# LeCun et al. 1998 as drawn in the course notes: valid 5x5 convs, average pooling, tanh.
# C3 is fully connected to S2 (the paper's partial connection table is left out): 61,706 parameters.
LENET5 = PlainSpec(
    layout=(("conv1", Conv(6, 5, padding="valid")), ("pool1", Pool("avg", 2, 2)),
            ("conv2", Conv(16, 5, padding="valid")), ("pool2", Pool("avg", 2, 2))),
    fc=(120, 84), activation="tanh", dropout=0.0)

# The single-tower AlexNet of the course notes (227x227 input; the paper's two GPU groups and LRN left out).
ALEXNET = PlainSpec(
    layout=(("conv1", Conv(96, 11, stride=4, padding="valid")), ("pool1", Pool("max", 3, 2)),
            ("conv2", Conv(256, 5)), ("pool2", Pool("max", 3, 2)),
            ("conv3", Conv(384, 3)), ("conv4", Conv(384, 3)), ("conv5", Conv(256, 3)),
            ("pool5", Pool("max", 3, 2))),
    fc=(4096, 4096), activation="relu", dropout=0.5)

# Simonyan & Zisserman 2014, Table 1 columns A, B, D, E: 3x3 conv widths, "M" a 2x2 max-pool.
VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


def vgg_layout(config) -> Layout:
    """Keras-style names: block{b}_conv{i}, block{b}_pool."""
    layout, block, conv = [], 1, 1
    for item in config:
        if item == "M":
            layout.append((f"block{block}_pool", Pool("max", 2, 2)))
            block, conv = block + 1, 1
        else:
            layout.append((f"block{block}_conv{conv}", Conv(item, 3)))
            conv += 1
    return tuple(layout)


def _register_plain(name, spec, **facts):
    register(name, lambda **kw: build_plain(spec, **kw), **facts)


_register_plain("lenet5", LENET5, family="lenet", input_shape=(32, 32, 1), num_classes=10,
                reference="LeCun et al. 1998, Fig. 2", source="004", small_input_shape=(32, 32, 1))
_register_plain("alexnet", ALEXNET, family="alexnet", input_shape=(227, 227, 3), num_classes=1000,
                reference="Krizhevsky et al. 2012, Fig. 2", source="004", small_input_shape=(67, 67, 3))
for _name, _config in VGG_CONFIGS.items():
    # Dropout 0.5 after fc1 and fc2 as in the paper; keras.applications leaves it out (no parameters either way).
    _register_plain(_name, PlainSpec(vgg_layout(_config), fc=(4096, 4096), activation="relu", dropout=0.5),
                    family="vgg", input_shape=(224, 224, 3), num_classes=1000,
                    reference="Simonyan & Zisserman 2014, Table 1", source="004", small_input_shape=(32, 32, 3))
