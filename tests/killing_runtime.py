"""A deployment runtime whose converter kills its own process, as the kernel does to one that runs out of memory
(tests/test_runtimes.py: the export costs its case, and the run goes on)."""
import os
import signal

NAME, LABEL, FORMAT, FILE = "killer", "Killer", "none", "model.bin"
PACKAGES = ()
QUANTIZES_EXPORT = False


def versions() -> dict:
    return {"killer": "1"}


def export(model, path, precision, calibration, float32=None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
