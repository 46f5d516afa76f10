"""What every command line of the suite shares: one-line usage errors, exit codes, and no traceback for the user."""
from __future__ import annotations

import argparse
import os
import sys


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2, no traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (argparse prints the usage block first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(prog: str, main, argv=None) -> int:
    try:
        return main(argv)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader has gone; no traceback, and none at exit's flush either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input-shape must be three positive integers H,W,C, got {text!r}")
    return shape
