"""The model registry: every architecture by name, with its defaults and the source it follows.

It imports no Keras (the family modules do, as they register), so the report can sort and name models without it.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

Builder = Callable[..., object]  # builder(*, input_shape, num_classes, name) -> keras.Model
INPUT_SIZES = ("default", "small")  # each model's own input, or its smallest convenient one


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    builder: Builder  # builder(*, input_shape, num_classes, name) -> keras.Model
    input_shape: tuple[int, int, int]
    num_classes: int | None  # None: a feature-map model with no classifier head
    reference: str  # the paper, and its table or figure, that the model follows
    source: str | None  # the source document (../shared/seeds/) it comes from, if any
    small_input_shape: tuple[int, int, int]  # the smallest convenient input, for quick tests and smoke runs


_REGISTRY: dict[str, Entry] = {}


def register(name: str, builder: Builder, *, family: str, input_shape, num_classes: int | None,
             reference: str, source: str | None = None, small_input_shape=None) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    if source is not None and source not in SOURCES:
        raise ValueError(f"{name}: source {source!r} is not one of {', '.join(SOURCES)}")
    _REGISTRY[name] = Entry(name, family, builder, tuple(input_shape), num_classes, reference, source,
                            tuple(small_input_shape or input_shape))


# The source documents (../shared/seeds/, blog posts and course notes in Chinese), by what a reader knows them as.
SOURCES = {
    "000": "ResNet summary (keras)",
    "001": "Residual networks",
    "002": "ResNet-50 transfer learning",
    "003": "GoogLeNet in Keras",
    "004": "deeplearning.ai case studies",
}


# The source documents' cost example: (the module without 1x1 reductions, the module with them). The suite times each
# second model beside the first, so that what the reductions buy is a paired ratio.
COST_EXAMPLES = (("conv5x5", "conv5x5_bottleneck"), ("inception3a_naive", "inception3a"))
COST_PARTNER = {small: big for big, small in COST_EXAMPLES}


def natural_key(text) -> list:
    """resnet20 before resnet110: numbers in names sort as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def shape_text(shape) -> str:
    """(224, 224, 3) as 224x224x3."""
    return "x".join(str(d) for d in shape)


def input_shape(name: str, input_size: str) -> tuple[int, int, int]:
    """A model's input at one of INPUT_SIZES."""
    spec = entry(name)
    return spec.small_input_shape if input_size == "small" else spec.input_shape


def names(pattern: str | None = None) -> list[str]:
    """Registered names matching a shell-style pattern (all when None), in natural order."""
    found = [n for n in _REGISTRY if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    return sorted(found, key=natural_key)


def entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `python -m models`"
        raise ValueError(f"unknown model {name!r}{hint}") from None


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be three positive integers (height, width, channels), got {input_shape!r}")
    return shape


def build(name: str, *, input_shape=None, num_classes: int | None = None, **overrides) -> keras.Model:
    """An uncompiled model with random weights; `model.name` is the registry name."""
    spec = entry(name)
    shape = _check_input_shape(input_shape) if input_shape is not None else spec.input_shape
    if num_classes is not None:
        if spec.num_classes is None:
            raise ValueError(f"{name} has no classifier head, so num_classes does not apply")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    classes = num_classes if num_classes is not None else spec.num_classes
    try:
        return spec.builder(input_shape=shape, num_classes=classes, name=name, **overrides)
    except ValueError as err:
        if "negative" in str(err).lower() or "too small" in str(err).lower() or "non-positive" in str(err).lower():
            raise ValueError(f"input_shape {shape} is too small for {name}") from err
        raise


def select(patterns) -> list[str]:
    """Names for a list of names and wildcards, in the order given, without repeats; ValueError on no match."""
    chosen: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = names(pattern)
            if not found:
                raise ValueError(f"no model matches {pattern!r}; see `python -m models`")
        else:
            found = [entry(pattern).name]
        chosen.extend(n for n in found if n not in chosen)
    if not chosen:
        raise ValueError("no model selected")
    return chosen
