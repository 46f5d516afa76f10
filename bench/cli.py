"""What every command line of the suite shares: one-line errors and a quiet start of Keras and its backend."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile


def quiet_start(backend: str | None = None) -> None:
    """Import Keras on its backend (`backend`, else KERAS_BACKEND, else TensorFlow) and find the devices, with file
    descriptor 2 sent to a temporary file.

    TensorFlow's C++ start-up lines (cudart_stub, "failed call to cuInit" without a GPU driver, "oneDNN custom
    operations are on" on CPUs with AVX-512 VNNI/BF16) come out before absl's logging starts, so
    TF_CPP_MIN_LOG_LEVEL does not hide them. Should the import fail, what it printed is shown after all.
    Raises UsageError for a backend cnnbench does not run, or another than the one Keras already runs.
    """
    from .engines import BACKEND_VARIABLE, check_backend

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # allocator statistics (peak memory) on the CPU too
    try:
        wanted = check_backend(backend or os.environ.get(BACKEND_VARIABLE) or "tensorflow")
    except ValueError as err:
        raise UsageError(str(err)) from None
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != wanted:
            raise UsageError(f"backend {wanted!r}: Keras already runs on {running!r} in this process")
        return
    os.environ[BACKEND_VARIABLE] = wanted
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401

            from .engines import current
            current().gpus()  # the devices are found here, while start-up lines go to the sink
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


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
