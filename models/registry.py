"""The model registry: every architecture by name, with its defaults and the source it follows."""
from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Callable

import keras

Builder = Callable[..., keras.Model]


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    builder: Builder  # builder(*, input_shape, num_classes, name) -> keras.Model
    input_shape: tuple[int, int, int]
    num_classes: int | None  # None: a feature-map model with no classifier head
    reference: str
    small_input_shape: tuple[int, int, int]  # the smallest convenient input, for quick tests and smoke runs


_REGISTRY: dict[str, Entry] = {}


def register(name: str, builder: Builder, *, family: str, input_shape, num_classes: int | None,
             reference: str, small_input_shape=None) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = Entry(name, family, builder, tuple(input_shape), num_classes, reference,
                            tuple(small_input_shape or input_shape))


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def names(pattern: str | None = None) -> list[str]:
    """Registered names matching a shell-style pattern (all when None), in natural order."""
    found = [n for n in _REGISTRY if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    return sorted(found, key=_natural_key)


def entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; see `python -m models`"
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
