"""ONNX Runtime: Keras's `onnx` export (through tf2onnx), run by onnxruntime's CPU execution provider; int8 by
`onnxruntime.quantization.quantize_static` (QDQ) from the float32 export."""
from __future__ import annotations

import json
import os
from importlib.metadata import version

from .quiet import quiet

NAME, LABEL, FORMAT, FILE = "onnxruntime", "ONNX Runtime", "onnx", "model.onnx"
PACKAGES = ("onnxruntime", "tf2onnx", "onnx")
COMPILES = "graph optimisations (all levels) when the session is made; no compile step"
QUANTIZES_EXPORT = True  # int8 is quantize_static of the float32 export
NO_PROFILE = None


def versions() -> dict:
    return {"onnxruntime": version("onnxruntime"), "tf2onnx": version("tf2onnx"), "onnx": version("onnx")}


# tf2onnx holds several copies of the weights while it folds constants: exporting VGG-16 (138 M parameters) in the
# run's process grew it past 24 GB on a 24 GiB machine, where the kernel killed it; AlexNet (62 M) took 100 s.
MAX_EXPORT_PARAMS = 100_000_000


def refuses(params: int) -> str | None:
    if params > MAX_EXPORT_PARAMS:
        # one text for every model refused, so that the report counts them under one reason
        return (f"tf2onnx needs more memory than this machine has above {MAX_EXPORT_PARAMS / 1e6:.0f} M parameters "
                "(VGG-16's 138 M grew it past 24 GB)")
    return None


def export(model, path: str, precision: str, calibration: list, float32=None) -> None:
    reason = refuses(model.count_params())
    if reason:
        raise MemoryError(reason)
    with quiet():
        if precision == "float32":
            model.export(path, format=FORMAT, verbose=False)
            return
        from onnxruntime.quantization import CalibrationDataReader, quantize_static

        name = _input_name(float32.path)

        class Batches(CalibrationDataReader):
            def __init__(self):
                self.batches = iter(calibration)

            def get_next(self):
                batch = next(self.batches, None)
                return None if batch is None else {name: batch}

        quantize_static(float32.path, path, Batches())


def _input_name(path: str) -> str:
    import onnx

    return onnx.load(path, load_external_data=False).graph.input[0].name


def _options(threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return options


class Session:
    def __init__(self, path: str, threads: int, profile_prefix: str | None = None):
        import onnxruntime as ort

        with quiet():
            self.session = ort.InferenceSession(path, _options(threads, profile_prefix),
                                                providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        kinds = {node.op_type for node in _graph(path).node}
        self.executed_precision = "int8" if "QuantizeLinear" in kinds or "QLinearConv" in kinds else "float32"

    def __call__(self, x):
        return self.session.run(None, {self.input: x})[0]


def _graph(path: str):
    import onnx

    return onnx.load(path, load_external_data=False).graph


def profile(path: str, threads: int, x, steps: int, folder: str) -> list[tuple]:
    """ONNX Runtime's own profiler: a Chrome-trace JSON in `folder` (Perfetto or chrome://tracing open it); the
    kernels' total times by node."""
    session = Session(path, threads, profile_prefix=os.path.join(folder, "onnxruntime_profile"))
    for _ in range(steps + 1):  # the first run warms up (ORT profiles from the session's making): left out below
        session(x)
    written = session.session.end_profiling()
    with open(written) as f:
        events = json.load(f)
    runs = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events if e.get("name") == "model_run")
    warmed = runs[0][1] if runs else 0
    totals = {}
    for event in events:
        if (event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time")
                and event.get("ts", 0) >= warmed):
            key = (event["name"][:-len("_kernel_time")], event.get("args", {}).get("op_name", "?"))
            totals[key] = totals.get(key, 0.0) + float(event.get("dur", 0))
    return [(name, kind, total) for (name, kind), total in totals.items()]
