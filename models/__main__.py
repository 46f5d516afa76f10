"""`python -m models [PATTERN]`: the registry as a table, its counts from facts.json (no model is built)."""
from __future__ import annotations

import argparse
import sys

HEADERS = ("name", "family", "input", "classes", "params", "trainable", "depth", "follows", "source document")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as bench.core.cli says it (the zoo imports nothing of bench)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _counted(name: str, known: dict) -> dict:
    """The model's default-size counts from facts.json; a model added since is built and counted."""
    if name in known and "depth" in known[name].get("default", {}):
        return known[name]["default"]
    import keras

    from . import build
    from .info import depth, parameter_counts
    model = build(name)
    total, trainable = parameter_counts(model)
    counted = {"params": total, "trainable_params": trainable, "depth": depth(model)}
    keras.backend.clear_session()
    return counted


def rows(pattern: str | None = None):
    from . import entry, names
    from .facts import load
    from .registry import SOURCES, shape_text

    known = load()
    for name in names(pattern):
        spec, counted = entry(name), _counted(name, known)
        yield (name, spec.family, shape_text(spec.input_shape), str(spec.num_classes or "-"), counted["params"],
               counted["trainable_params"], counted["depth"], spec.reference,
               SOURCES[spec.source] if spec.source else "-")


def main(argv=None) -> int:
    parser = _Parser(prog="python -m models", description="List the registered models.")
    parser.add_argument("pattern", nargs="?", help="shell-style wildcard, e.g. 'resnet*'")
    args = parser.parse_args(argv)
    from tabulate import tabulate

    from .quiet import held_stderr
    with held_stderr():  # the family modules import Keras, and it TensorFlow
        table = list(rows(args.pattern))
    if not table:
        print(f"python -m models: no model matches {args.pattern!r}", file=sys.stderr)
        return 2
    print(tabulate(table, headers=HEADERS, intfmt=",", disable_numparse=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
