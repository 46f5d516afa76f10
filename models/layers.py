"""Units shared by several families: conv-BN-activation and the classifier head."""
from __future__ import annotations

import keras
from keras import layers


def conv_bn_act(x, filters: int, kernel, *, stride: int = 1, padding: str = "same", use_bias: bool = False,
                bn_scale: bool = True, bn_epsilon: float = 1e-3, activation: str | None = "relu", name: str):
    """Conv2D -> BatchNorm -> activation, named `{name}_conv`, `{name}_bn`, `{name}_{activation}`."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=use_bias, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, scale=bn_scale, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def classifier(x, num_classes: int, *, dropout: float = 0.0, name: str = "predictions"):
    """Global average pooling, optional dropout, softmax over `num_classes`."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name=name)(x)


def input_layer(input_shape):
    return keras.Input(shape=input_shape, name="input")
