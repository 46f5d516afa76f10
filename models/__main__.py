"""`python -m models [PATTERN]`: the registry as a table."""
from __future__ import annotations

import argparse
import sys

from tabulate import tabulate

HEADERS = ("name", "family", "input", "classes", "params", "trainable", "depth", "follows")


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def rows(pattern: str | None = None):
    import keras

    from . import build, entry, names
    from .info import depth, parameter_counts
    for name in names(pattern):
        spec = entry(name)
        model = build(name)
        total, trainable = parameter_counts(model)
        yield (name, spec.family, _shape(spec.input_shape), spec.num_classes or "-", total, trainable, depth(model),
               spec.reference)
        del model
        keras.backend.clear_session()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description="List the registered models.")
    parser.add_argument("pattern", nargs="?", help="shell-style wildcard, e.g. 'resnet*'")
    args = parser.parse_args(argv)
    from bench.cli import quiet_start
    quiet_start()
    from . import names
    if not names(args.pattern):
        print(f"python -m models: no model matches {args.pattern!r}", file=sys.stderr)
        return 2
    print(tabulate(list(rows(args.pattern)), headers=HEADERS, intfmt=",", disable_numparse=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
