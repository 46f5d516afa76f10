"""The transfer-learning model of seed 002: a frozen ResNet-50 trunk under a small trainable head."""
from __future__ import annotations

import keras
from keras import layers

from .layers import input_layer
from .registry import register
from .resnet import RESNET_SPECS, build_resnet

HEAD_WIDTHS = (512, 64)
HEAD_DROPOUT = 0.4


def build_transfer(*, input_shape, num_classes: int, name: str) -> keras.Model:
    # Random weights: seed 002 loads ImageNet weights, which cannot be fetched here and change no cost.
    trunk = build_resnet(RESNET_SPECS["resnet50"], input_shape=input_shape, num_classes=1, name="resnet50_trunk",
                         include_top=False)
    trunk.trainable = False
    inputs = input_layer(input_shape)
    x = trunk(inputs, training=False)  # a frozen trunk keeps its BatchNorm in inference mode
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(HEAD_DROPOUT, name="flatten_dropout")(x)
    for i, width in enumerate(HEAD_WIDTHS, start=1):
        x = layers.Dense(width, activation="elu", name=f"fc{i}")(x)
        x = layers.Dropout(HEAD_DROPOUT, name=f"fc{i}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


register("resnet50_transfer", build_transfer, family="transfer", input_shape=(224, 224, 3), num_classes=10,
         reference="frozen ResNet-50, Dense 512, 64", source="002",
         small_input_shape=(32, 32, 3))
