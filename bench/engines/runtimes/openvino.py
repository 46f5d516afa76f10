"""OpenVINO: Keras's `openvino` export, compiled for OpenVINO's CPU plugin; int8 by NNCF's post-training
`nncf.quantize` of the float32 export."""
from __future__ import annotations

import json
import os
from importlib.metadata import version

from .quiet import quiet

NAME, LABEL, FORMAT, FILE = "openvino", "OpenVINO", "openvino", "model.xml"
PACKAGES = ("openvino", "nncf", "scipy")  # Keras's openvino export needs scipy
COMPILES = ("compile_model for the CPU plugin (LATENCY hint) when the session is made; it picks its own inference "
            "precision: bf16 where the CPU has AVX512_BF16 or AMX")
QUANTIZES_EXPORT = True
NO_PROFILE = None


def refuses(params: int) -> str | None:
    return None  # no model of the zoo is too big for its converter here


def versions() -> dict:
    return {"openvino": version("openvino"), "nncf": version("nncf")}


def export(model, path: str, precision: str, calibration: list, float32=None) -> None:
    with quiet():
        if precision == "float32":
            model.export(path, format=FORMAT, verbose=False)
            return
        import nncf
        import openvino as ov

        quantized = nncf.quantize(ov.Core().read_model(float32.path), nncf.Dataset(calibration),
                                  subset_size=len(calibration))
        ov.save_model(quantized, path, compress_to_fp16=False)


OV_TYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


class Session:
    def __init__(self, path: str, threads: int, perf_count: bool = False):
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if perf_count:
            config["PERF_COUNT"] = True
        core = ov.Core()
        model = core.read_model(path)
        with quiet():
            self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.tensor = ov.Tensor
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        executed = OV_TYPES.get(hint, hint)  # what the plugin runs in, asked for or not
        quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        self.executed_precision = f"int8+{executed}" if quantized else executed

    def __call__(self, x):
        # the input copied into a Tensor, not infer({0: x}): that path's conversion cost LeNet-5 +26 us a call (0.101
        # against 0.075 ms, 0.056 this way) once onnxruntime had been imported in the process, as in a run
        self.request.set_input_tensor(self.tensor(x))
        self.request.infer()
        return self.request.get_output_tensor(0).data.copy()


def profile(path: str, threads: int, x, steps: int, folder: str) -> list[tuple]:
    """OpenVINO's performance counters (PERF_COUNT), each node's real time summed over the steps; written to
    `folder`/openvino_profile.json."""
    session = Session(path, threads, perf_count=True)
    session(x)  # warm-up, not counted
    totals = {}
    for _ in range(steps):
        session(x)
        for info in session.request.get_profiling_info():
            key = (info.node_name, f"{info.node_type} ({info.exec_type})")
            totals[key] = totals.get(key, 0.0) + info.real_time.total_seconds() * 1e6
    rows = [(name, kind, total) for (name, kind), total in totals.items() if total > 0]
    with open(os.path.join(folder, "openvino_profile.json"), "w") as f:
        json.dump([{"node": name, "type": kind, "real_time_us": total / steps} for name, kind, total in rows], f,
                  indent=1)
    return rows
