"""GoogLeNet (Inception v1), Inception v3 and v4, and the single Inception modules of the cost example."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import keras
from keras import layers

from .layers import classifier, conv_bn_act, input_layer
from .ops import Conv, Fork, Layout, Pool, build_op
from .registry import register


@dataclass(frozen=True)
class InceptionRow:
    """One row of GoogLeNet's Table 1 (Szegedy et al. 2014); a zero width leaves that 1x1 conv out."""
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    def fork(self) -> Fork:
        def reduce(width, name):
            return (Conv(width, 1, name=f"{name}_reduce"),) if width else ()
        pool_proj = (Conv(self.pool_proj, 1, name="pool_proj"),) if self.pool_proj else ()
        return Fork((
            (Conv(self.ch1x1, 1, name="1x1"),),
            reduce(self.ch3x3red, "3x3") + (Conv(self.ch3x3, 3, name="3x3"),),
            reduce(self.ch5x5red, "5x5") + (Conv(self.ch5x5, 5, name="5x5"),),
            (Pool("max", 3, 1, "same", name="pool"),) + pool_proj,
        ))


def _maxpool_same():
    return Pool("max", 3, 2, "same")


def _avgpool_same():
    return Pool("avg", 3, 1, "same")


def _split(width: int) -> Fork:
    """Inception v3/v4's expanded filter bank: a 1x3 and a 3x1 conv side by side."""
    return Fork(((Conv(width, (1, 3)),), (Conv(width, (3, 1)),)))


GOOGLENET_ROWS = {
    "inception_3a": InceptionRow(64, 96, 128, 16, 32, 32),
    "inception_3b": InceptionRow(128, 128, 192, 32, 96, 64),
    "inception_4a": InceptionRow(192, 96, 208, 16, 48, 64),
    "inception_4b": InceptionRow(160, 112, 224, 24, 64, 64),
    "inception_4c": InceptionRow(128, 128, 256, 24, 64, 64),
    "inception_4d": InceptionRow(112, 144, 288, 32, 64, 64),
    "inception_4e": InceptionRow(256, 160, 320, 32, 128, 128),
    "inception_5a": InceptionRow(256, 160, 320, 32, 128, 128),
    "inception_5b": InceptionRow(384, 192, 384, 48, 128, 128),
}
_POOL_AFTER = {"inception_3b": "pool3", "inception_4e": "pool4"}

# Table 1 with LRN left out; every conv is conv-BN-ReLU without bias (the 2014 paper predates BN).
GOOGLENET: Layout = (
    ("conv1_7x7", Conv(64, 7, stride=2)), ("pool1", _maxpool_same()),
    ("conv2_3x3_reduce", Conv(64, 1)), ("conv2_3x3", Conv(192, 3)), ("pool2", _maxpool_same()),
) + tuple(op for name, row in GOOGLENET_ROWS.items()
          for op in ((name, row.fork()),) + (((_POOL_AFTER[name], _maxpool_same()),) if name in _POOL_AFTER else ()))


def _block35(pool_proj):
    return Fork(((Conv(64, 1),), (Conv(48, 1), Conv(64, 5)), (Conv(64, 1), Conv(96, 3), Conv(96, 3)),
                 (_avgpool_same(), Conv(pool_proj, 1))))


def _block17(width):
    return Fork(((Conv(192, 1),),
                 (Conv(width, 1), Conv(width, (1, 7)), Conv(192, (7, 1))),
                 (Conv(width, 1), Conv(width, (7, 1)), Conv(width, (1, 7)), Conv(width, (7, 1)), Conv(192, (1, 7))),
                 (_avgpool_same(), Conv(192, 1))))


_BLOCK8 = Fork(((Conv(320, 1),), (Conv(384, 1), _split(384)), (Conv(448, 1), Conv(384, 3), _split(384)),
                (_avgpool_same(), Conv(192, 1))))

# Szegedy et al. 2015 as keras.applications.InceptionV3 builds it (block names mixed0..mixed10).
INCEPTION_V3: Layout = (
    ("conv1", Conv(32, 3, stride=2, padding="valid")), ("conv2", Conv(32, 3, padding="valid")),
    ("conv3", Conv(64, 3)), ("pool1", Pool("max", 3, 2)),
    ("conv4", Conv(80, 1, padding="valid")), ("conv5", Conv(192, 3, padding="valid")), ("pool2", Pool("max", 3, 2)),
    ("mixed0", _block35(32)), ("mixed1", _block35(64)), ("mixed2", _block35(64)),
    ("mixed3", Fork(((Conv(384, 3, stride=2, padding="valid"),),
                     (Conv(64, 1), Conv(96, 3), Conv(96, 3, stride=2, padding="valid")),
                     (Pool("max", 3, 2),)))),
    ("mixed4", _block17(128)), ("mixed5", _block17(160)), ("mixed6", _block17(160)), ("mixed7", _block17(192)),
    ("mixed8", Fork(((Conv(192, 1), Conv(320, 3, stride=2, padding="valid")),
                     (Conv(192, 1), Conv(192, (1, 7)), Conv(192, (7, 1)), Conv(192, 3, stride=2, padding="valid")),
                     (Pool("max", 3, 2),)))),
    ("mixed9", _BLOCK8), ("mixed10", _BLOCK8),
)

_V4_A = Fork(((_avgpool_same(), Conv(96, 1)), (Conv(96, 1),), (Conv(64, 1), Conv(96, 3)),
              (Conv(64, 1), Conv(96, 3), Conv(96, 3))))
_V4_B = Fork(((_avgpool_same(), Conv(128, 1)), (Conv(384, 1),),
              (Conv(192, 1), Conv(224, (1, 7)), Conv(256, (7, 1))),
              (Conv(192, 1), Conv(192, (7, 1)), Conv(224, (1, 7)), Conv(224, (7, 1)), Conv(256, (1, 7)))))
_V4_C = Fork(((_avgpool_same(), Conv(256, 1)), (Conv(256, 1),), (Conv(384, 1), _split(256)),
              (Conv(384, 1), Conv(448, (3, 1)), Conv(512, (1, 3)), _split(256))))

# Szegedy et al. 2016, Figures 3-8 (reduction-A with k, l, m, n = 192, 224, 256, 384).
INCEPTION_V4: Layout = (
    ("stem_conv1", Conv(32, 3, stride=2, padding="valid")), ("stem_conv2", Conv(32, 3, padding="valid")),
    ("stem_conv3", Conv(64, 3)),
    ("stem_mixed1", Fork(((Pool("max", 3, 2),), (Conv(96, 3, stride=2, padding="valid"),)))),
    ("stem_mixed2", Fork(((Conv(64, 1), Conv(96, 3, padding="valid")),
                          (Conv(64, 1), Conv(64, (1, 7)), Conv(64, (7, 1)), Conv(96, 3, padding="valid"))))),
    ("stem_mixed3", Fork(((Conv(192, 3, stride=2, padding="valid"),), (Pool("max", 3, 2),)))),
) + tuple((f"inception_a{i}", _V4_A) for i in range(1, 5)) + (
    ("reduction_a", Fork(((Pool("max", 3, 2),), (Conv(384, 3, stride=2, padding="valid"),),
                          (Conv(192, 1), Conv(224, 3), Conv(256, 3, stride=2, padding="valid"))))),
) + tuple((f"inception_b{i}", _V4_B) for i in range(1, 8)) + (
    ("reduction_b", Fork(((Pool("max", 3, 2),), (Conv(192, 1), Conv(192, 3, stride=2, padding="valid")),
                          (Conv(256, 1), Conv(256, (1, 7)), Conv(320, (7, 1)),
                           Conv(320, 3, stride=2, padding="valid"))))),
) + tuple((f"inception_c{i}", _V4_C) for i in range(1, 4))

# The cost example of seed 004 (28x28x192 in, 32 channels out) and GoogLeNet's block 3a with and without its
# 1x1 reductions (seed 003's naive module, with the paper's widths).
CONV5X5: Layout = (("conv5x5", Conv(32, 5)),)
CONV5X5_BOTTLENECK: Layout = (("reduce1x1", Conv(16, 1)), ("conv5x5", Conv(32, 5)))
INCEPTION3A: Layout = (("inception_3a", GOOGLENET_ROWS["inception_3a"].fork()),)
INCEPTION3A_NAIVE: Layout = (("inception_3a", InceptionRow(64, 0, 128, 0, 32, 0).fork()),)


def _unit(**bn):
    """A conv_unit for `build_op`: conv-BN-ReLU without conv bias, with the family's BN settings."""
    def unit(x, op: Conv, *, name):
        return conv_bn_act(x, op.filters, op.kernel, stride=op.stride, padding=op.padding, name=name, **bn)
    return unit


def _plain_unit(x, op: Conv, *, name):
    return layers.Conv2D(op.filters, op.kernel, strides=op.stride, padding=op.padding, activation="relu",
                         name=name)(x)


def _aux_head(x, num_classes, name):
    """GoogLeNet's auxiliary classifier: 5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7, softmax."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv_bn_act(x, 128, 1, name=f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name=f"{name}_predictions")(x)


def build_inception(layout: Layout, *, conv_unit, dropout: float = 0.0, aux_taps: tuple[str, ...] = (),
                    input_shape, num_classes: int | None, name: str, aux_classifiers: bool = False):
    inputs = input_layer(input_shape)
    x, aux = inputs, []
    for block_name, op in layout:
        x = build_op(x, op, conv_unit=conv_unit, name=block_name)
        if aux_classifiers and block_name in aux_taps:
            aux.append(_aux_head(x, num_classes, f"aux{len(aux) + 1}"))
    if aux_classifiers and not aux_taps:
        raise ValueError(f"{name} has no auxiliary classifiers")
    outputs = x if num_classes is None else classifier(x, num_classes, dropout=dropout)
    return keras.Model(inputs, [outputs, *aux] if aux else outputs, name=name)


_GOOGLENET_UNIT = _unit(bn_epsilon=1e-3)
_SLIM_UNIT = _unit(bn_scale=False, bn_epsilon=1e-3)  # keras/TF-slim Inception: BN without a learned scale

_MODELS = {  # name: (layout, builder keywords, default input, classes, (paper, source), small input)
    "googlenet": (GOOGLENET, dict(conv_unit=_GOOGLENET_UNIT, dropout=0.4, aux_taps=("inception_4a", "inception_4d")),
                  (224, 224, 3), 1000, ("Szegedy et al. 2014, Table 1", "003"), (32, 32, 3)),
    "inception_v3": (INCEPTION_V3, dict(conv_unit=_SLIM_UNIT), (299, 299, 3), 1000,
                     ("Szegedy et al. 2015, Fig. 5-7", None), (75, 75, 3)),
    "inception_v4": (INCEPTION_V4, dict(conv_unit=_SLIM_UNIT, dropout=0.2), (299, 299, 3), 1000,
                     ("Szegedy et al. 2016, Fig. 9", "003"), (75, 75, 3)),
    "conv5x5": (CONV5X5, dict(conv_unit=_plain_unit), (28, 28, 192), None,
                ("1x1 cost example: a 5x5 conv", "004"), None),
    "conv5x5_bottleneck": (CONV5X5_BOTTLENECK, dict(conv_unit=_plain_unit), (28, 28, 192), None,
                           ("1x1 cost example: 1x1, then 5x5", "004"), None),
    "inception3a_naive": (INCEPTION3A_NAIVE, dict(conv_unit=_GOOGLENET_UNIT), (28, 28, 192), None,
                          ("Szegedy et al. 2014, Fig. 2a", "003"), None),
    "inception3a": (INCEPTION3A, dict(conv_unit=_GOOGLENET_UNIT), (28, 28, 192), None,
                    ("Szegedy et al. 2014, Fig. 2b", "003"), None),
}
for _name, (_layout, _kw, _shape, _classes, (_ref, _source), _small) in _MODELS.items():
    register(_name, partial(build_inception, _layout, **_kw), family="inception" if _classes else "cost-example",
             input_shape=_shape, num_classes=_classes, reference=_ref, source=_source, small_input_shape=_small)
