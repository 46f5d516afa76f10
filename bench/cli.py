"""What every command line of the suite shares: one-line errors and quiet TensorFlow start-up."""
from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter off the terminal; call before importing it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2, no traceback."""


def run(prog: str, main, argv=None) -> int:
    try:
        return main(argv)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input-shape must be three positive integers H,W,C, got {text!r}")
    return shape
