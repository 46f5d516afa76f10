"""The export cache: a model exported once per runtime, precision and input size, for the versions of Keras and the
runtime's converter, and reused by every later run.

Each export is a folder `<root>/<model>-<input size>-<precision>-<runtime>-<versions digest>/` holding the
artifact, `export.json` (what it took to make, the versions) and `reference.npz`: an input and the output of the
Keras float32 model the artifact was made from. The weights are random, so fidelity (the runtime's output against
that reference) is numerical agreement with Keras, not accuracy. A folder is written in a staging folder beside it
and renamed into place when whole: a run cut off during an export leaves none half-made.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from ...core.files import staged_folder

CACHE_VARIABLE = "CNNBENCH_EXPORT_CACHE"
CALIBRATION_BATCHES = 16  # synthetic single-sample batches for int8 calibration (uniform in [0, 1), as the inputs)
REFERENCE_BATCH = 2


def default_root() -> str:
    """$CNNBENCH_EXPORT_CACHE, else the user's cache folder: exports outlive a checkout and its runs."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(CACHE_VARIABLE) or os.path.join(base, "cnnbench", "exports")


@dataclass(frozen=True)
class Export:
    path: str  # the artifact
    seconds: float  # what making it took, when it was made
    size_bytes: int  # on disk, with any side files (OpenVINO's .bin)
    cached: bool  # made by an earlier run
    reference_input: np.ndarray
    reference_output: np.ndarray


def folder_name(runtime, model_name: str, input_size: str, precision: str) -> str:
    import keras

    versions = {"keras": keras.__version__, **runtime.versions()}
    digest = hashlib.sha1(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:10]
    return f"{model_name}-{input_size}-{precision}-{runtime.NAME}-{digest}"


def find(root: str, runtime, model_name: str, input_size: str, precision: str) -> Export | None:
    """The cached export, or None."""
    folder = os.path.join(root, folder_name(runtime, model_name, input_size, precision))
    meta_path = os.path.join(folder, "export.json")
    if not os.path.exists(meta_path):
        return None
    with open(meta_path) as f:
        meta = json.load(f)
    reference = np.load(os.path.join(folder, "reference.npz"))
    return Export(os.path.join(folder, runtime.FILE), meta["seconds"], meta["size_bytes"], True,
                  reference["input"], reference["output"])


def synthetic_inputs(shape: tuple, count: int, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((batch, *shape), dtype=np.float32) for _ in range(count)]


def make(root: str, runtime, model, model_name: str, input_size: str, precision: str) -> Export:
    """Export `model` (Keras, float32) for `runtime`, or take the cached export. int8 from a runtime that quantizes
    its own float32 export (ONNX Runtime, OpenVINO) starts from that export, made first when need be, and keeps
    its reference (the weights it was made from)."""
    found = find(root, runtime, model_name, input_size, precision)
    if found is not None:
        return found
    shape = tuple(model.input_shape[1:])
    float32 = None
    if precision != "float32" and runtime.QUANTIZES_EXPORT:
        float32 = make(root, runtime, model, model_name, input_size, "float32")
    name = folder_name(runtime, model_name, input_size, precision)
    final = os.path.join(root, name)
    with staged_folder(final, os.path.join(root, f".staging-{os.getpid()}-{name}")) as staging:
        if float32 is not None:
            reference_input, reference_output = float32.reference_input, float32.reference_output
        else:
            reference_input = synthetic_inputs(shape, 1, REFERENCE_BATCH, seed=1)[0]
            reference_output = np.asarray(model(reference_input, training=False), dtype=np.float32)
        calibration = synthetic_inputs(shape, CALIBRATION_BATCHES, 1, seed=2)
        started = time.perf_counter()
        runtime.export(model, os.path.join(staging, runtime.FILE), precision, calibration, float32)
        seconds = time.perf_counter() - started
        size = sum(os.path.getsize(os.path.join(staging, f)) for f in os.listdir(staging))
        np.savez(os.path.join(staging, "reference.npz"), input=reference_input, output=reference_output)
        with open(os.path.join(staging, "export.json"), "w") as f:
            json.dump({"seconds": seconds, "size_bytes": size, "model": model_name, "input_size": input_size,
                       "precision": precision, "runtime": runtime.NAME, "versions": runtime.versions()}, f)
    return Export(os.path.join(final, runtime.FILE), seconds, size, False, reference_input, reference_output)


# An export that takes longer than this is stopped: the zoo's longest, AlexNet to ONNX, took 100 s on a 2-core CPU.
EXPORT_TIMEOUT_S = 600.0


FAILED = "cnnbench export failed: "  # how the child's one line starts, among the converters' own output


class ExportFailed(Exception):
    """A converter's failure, in one line: the case is skipped with it, and the run goes on."""


def make_in_child(root: str, runtime, model_name: str, input_size: str, precision: str,
                  timeout: float = EXPORT_TIMEOUT_S) -> Export:
    """The cached export, or one made in a child process (bench.engines.runtimes.child) from the model built afresh:
    a converter that crashes, hangs past `timeout` or runs out of memory raises ExportFailed saying so, its staging
    folder removed, and the caller's process is unharmed (the child is the kernel's first choice when memory runs
    out)."""
    found = find(root, runtime, model_name, input_size, precision)
    if found is not None:
        return found
    argv = [sys.executable, "-m", "bench.engines.runtimes.child", runtime.__name__, model_name, input_size,
            precision, root]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=_first_to_be_killed)
    try:
        said, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        said = None
    finally:
        for name in glob.glob(os.path.join(root, f".staging-{child.pid}-*")):  # what a killed child left
            shutil.rmtree(name, ignore_errors=True)
    made = find(root, runtime, model_name, input_size, precision)
    if made is not None:
        return replace(made, cached=False)
    if said is None:
        raise ExportFailed(f"{runtime.LABEL} export failed: no result after {timeout:g} s (stopped)")
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise ExportFailed(f"{runtime.LABEL} export failed: its process was killed by {name}"
                           + (" (out of memory?)" if name == "SIGKILL" else ""))
    reason = next((line[len(FAILED):] for line in reversed(said.splitlines()) if line.startswith(FAILED)), None)
    raise ExportFailed(reason or f"{runtime.LABEL} export failed: exit status {child.returncode}")


def _first_to_be_killed() -> None:
    """In the child, before it runs: the kernel's out-of-memory killer takes it before the run (1000 is the most
    likely; raising one's own score needs no privilege)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:  # not Linux, or no /proc
        pass


def failure(runtime, err: Exception) -> str:
    """A converter's failure in one line: each fails in its own way, some with pages of log."""
    lines = str(err).strip().splitlines()
    return f"{runtime.LABEL} export failed: {type(err).__name__}" + (f": {lines[0][:200]}" if lines else "")


def relative_error(output, reference) -> float:
    """The largest difference from the reference, relative to the reference's largest magnitude (element-wise
    relative error would blow up on outputs near zero)."""
    output, reference = np.asarray(output, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.max(np.abs(output - reference)) / (np.max(np.abs(reference)) or 1.0))
