"""Architectures as data: convolutions, pools and parallel towers, and the one function that builds them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keras import layers


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: str = "same"
    name: str | None = None  # the layer's suffix inside a tower; the position when None


@dataclass(frozen=True)
class Pool:
    kind: str = "max"  # "max" or "avg"
    size: int = 3
    stride: int = 2
    padding: str = "valid"
    name: str | None = None


@dataclass(frozen=True)
class Fork:
    """Parallel towers over one input, concatenated on channels (an Inception block)."""
    towers: tuple[tuple["Op", ...], ...]


Op = Conv | Pool | Fork
ConvUnit = Callable[..., object]  # conv_unit(x, op: Conv, *, name) -> x
Layout = tuple[tuple[str, Op], ...]  # (layer name, op) in order: a whole network body as data

_POOLS = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}


def build_op(x, op: Op, *, conv_unit: ConvUnit, name: str):
    if isinstance(op, Conv):
        return conv_unit(x, op, name=name)
    if isinstance(op, Pool):
        return _POOLS[op.kind](op.size, strides=op.stride, padding=op.padding, name=name)(x)
    if isinstance(op, Fork):
        outputs = []
        for t, tower in enumerate(op.towers):
            y = x
            for j, inner in enumerate(tower):
                y = build_op(y, inner, conv_unit=conv_unit, name=f"{name}_{inner.name or f'{t}_{j}'}"
                             if not isinstance(inner, Fork) else f"{name}_{t}_{j}")
            outputs.append(y)
        return layers.Concatenate(name=name)(outputs)
    raise TypeError(f"unknown op {op!r}")


def build_layout(x, layout: Layout, *, conv_unit: ConvUnit):
    for name, op in layout:
        x = build_op(x, op, conv_unit=conv_unit, name=name)
    return x
