"""Residual networks, v1 (post-activation) and v2 (pre-activation), ImageNet and CIFAR layouts."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import keras
from keras import layers

from .layers import classifier, input_layer
from .registry import register


@dataclass(frozen=True)
class ResNetSpec:
    block: str  # "basic" (two 3x3) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion)
    depths: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # filters per stage; the stem has widths[0]
    preact: bool = False  # v2: BN-ReLU before each conv (He et al. 2016)
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": one 3x3 conv
    stride_at: str = "first"  # which block of a stage downsamples; keras.applications' v2 does it in the "last"
    conv_bias: bool = True  # bias on convs followed by BN: keras.applications' v1 has one, its v2 has none
    bn_epsilon: float = 1.001e-5

    def __post_init__(self):
        if self.block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {self.block!r}")
        if len(self.depths) != len(self.widths) or not self.depths:
            raise ValueError(f"depths and widths must have one entry per stage, got {self.depths} and {self.widths}")
        if self.stride_at not in ("first", "last"):
            raise ValueError(f"stride_at must be 'first' or 'last', got {self.stride_at!r}")


def _conv(x, filters, kernel, *, stride=1, use_bias=True, name):
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=use_bias, name=name)(x)


def _bn_relu(x, spec: ResNetSpec, name, *, relu=True):
    x = layers.BatchNormalization(epsilon=spec.bn_epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _kernels(spec: ResNetSpec):
    """Kernel sizes of a block's convs and its output channels per filter."""
    return ((3, 3), 1) if spec.block == "basic" else ((1, 3, 1), 4)


def block_v1(x, filters: int, *, stride: int, name: str, spec: ResNetSpec):
    """Post-activation block; the stride sits on the first conv (v1, not torchvision's v1.5)."""
    kernels, expansion = _kernels(spec)
    out_channels = filters * expansion
    shortcut = x
    if x.shape[-1] != out_channels or stride > 1:
        shortcut = _conv(x, out_channels, 1, stride=stride, use_bias=spec.conv_bias, name=f"{name}_0_conv")
        shortcut = _bn_relu(shortcut, spec, f"{name}_0", relu=False)
    for i, kernel in enumerate(kernels, start=1):
        last = i == len(kernels)
        x = _conv(x, out_channels if last else filters, kernel, stride=stride if i == 1 else 1,
                  use_bias=spec.conv_bias, name=f"{name}_{i}_conv")
        x = _bn_relu(x, spec, f"{name}_{i}", relu=not last)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def block_v2(x, filters: int, *, stride: int, name: str, spec: ResNetSpec):
    """Pre-activation block; the stride sits on the 3x3 conv. Convs that feed an add keep their bias."""
    kernels, expansion = _kernels(spec)
    out_channels = filters * expansion
    preact = _bn_relu(x, spec, f"{name}_preact")
    if x.shape[-1] != out_channels:
        shortcut = _conv(preact, out_channels, 1, stride=stride, name=f"{name}_0_conv")
    elif stride > 1:
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    x = preact
    strided = kernels.index(3) + 1
    for i, kernel in enumerate(kernels, start=1):
        last = i == len(kernels)
        x = _conv(x, out_channels if last else filters, kernel, stride=stride if i == strided else 1,
                  use_bias=last or spec.conv_bias, name=f"{name}_{i}_conv")
        if not last:
            x = _bn_relu(x, spec, f"{name}_{i}")
    return layers.Add(name=f"{name}_out")([shortcut, x])


def _block_strides(spec: ResNetSpec):
    """The stride of every block, stage by stage: each stage after the first halves the resolution."""
    stage_strides = [1] + [2] * (len(spec.depths) - 1)
    for s, depth in enumerate(spec.depths):
        strides = [1] * depth
        if spec.stride_at == "first":
            strides[0] = stage_strides[s]
        elif s + 1 < len(spec.depths):  # "last": the end of this stage does the next stage's downsampling
            strides[-1] = stage_strides[s + 1]
        yield strides


def build_resnet(spec: ResNetSpec, *, input_shape, num_classes: int, name: str, include_top: bool = True):
    block = partial(block_v2 if spec.preact else block_v1, spec=spec)
    inputs = input_layer(input_shape)
    stem_width = spec.widths[0]
    if spec.stem == "imagenet":
        x = _conv(inputs, stem_width, 7, stride=2, use_bias=spec.conv_bias or spec.preact, name="conv1_conv")
        if not spec.preact:
            x = _bn_relu(x, spec, "conv1")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    else:
        x = _conv(inputs, stem_width, 3, use_bias=spec.conv_bias or spec.preact, name="conv1_conv")
        if not spec.preact:
            x = _bn_relu(x, spec, "conv1")
    for s, (width, strides) in enumerate(zip(spec.widths, _block_strides(spec))):
        for b, stride in enumerate(strides, start=1):
            x = block(x, width, stride=stride, name=f"conv{s + 2}_block{b}")
    if spec.preact:
        x = _bn_relu(x, spec, "post")
    outputs = classifier(x, num_classes) if include_top else x
    return keras.Model(inputs, outputs, name=name)


_BASIC, _BOTTLENECK = "basic", "bottleneck"
IMAGENET_WIDTHS = (64, 128, 256, 512)
IMAGENET_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

RESNET_SPECS: dict[str, ResNetSpec] = {}
for _depth, _stages in IMAGENET_DEPTHS.items():
    _block = _BASIC if _depth < 50 else _BOTTLENECK
    RESNET_SPECS[f"resnet{_depth}"] = ResNetSpec(_block, _stages, IMAGENET_WIDTHS)
    if _block == _BOTTLENECK:  # keras.applications' ResNetV2: no bias before BN, downsampling at a stage's end
        RESNET_SPECS[f"resnet{_depth}v2"] = ResNetSpec(_block, _stages, IMAGENET_WIDTHS, preact=True,
                                                       stride_at="last", conv_bias=False)
# He et al. 2015 section 4.2: 6n+2 layers, 16/32/64 filters; 1x1 projections (option B) as in seed 001.
for _n in (3, 5, 7, 9, 18):
    for _preact in (False, True):
        RESNET_SPECS[f"resnet{6 * _n + 2}{'v2' if _preact else ''}"] = ResNetSpec(
            _BASIC, (_n,) * 3, (16, 32, 64), preact=_preact, stem="cifar", conv_bias=False, bn_epsilon=1e-3)

for _name, _spec in RESNET_SPECS.items():
    _cifar = _spec.stem == "cifar"
    register(_name, partial(build_resnet, _spec), family="resnet-cifar" if _cifar else "resnet",
             input_shape=(32, 32, 3) if _cifar else (224, 224, 3), num_classes=10 if _cifar else 1000,
             reference=("He et al. 2016, Fig. 4e (v2)" if _spec.preact else
                        "He et al. 2015, " + ("section 4.2" if _cifar else "Table 1")),
             source="001" if _cifar else "000",
             small_input_shape=(32, 32, 3))
