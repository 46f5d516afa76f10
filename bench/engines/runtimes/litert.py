"""LiteRT (TensorFlow Lite's successor): Keras's `litert` export through TensorFlow's converter, run by
`ai_edge_litert`'s interpreter with its default XNNPACK delegate."""
from __future__ import annotations

from importlib.metadata import version

from .quiet import quiet

NAME, LABEL, FORMAT, FILE = "litert", "LiteRT", "litert", "model.tflite"
PACKAGES = ("ai_edge_litert", "tensorflow")
COMPILES = "XNNPACK delegate applied when the interpreter is made (its default); no compile step"
QUANTIZES_EXPORT = False  # int8 comes from the converter itself, from the Keras model
# LiteRT's per-op profiler is in its benchmark_model tool; the Python interpreter offers none
NO_PROFILE = "LiteRT's Python interpreter has no per-op profiler (its benchmark_model tool has)"


def refuses(params: int) -> str | None:
    return None  # no model of the zoo is too big for its converter here


def versions() -> dict:
    return {"ai_edge_litert": version("ai-edge-litert"), "tensorflow": version("tensorflow")}


def export(model, path: str, precision: str, calibration: list, float32=None) -> None:
    """float32, or full-integer int8 weights and activations (float32 in and out) calibrated on `calibration`."""
    options = {}
    if precision == "int8":
        import tensorflow as tf
        options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                   "representative_dataset": lambda: ([batch] for batch in calibration)}
    with quiet():
        model.export(path, format=FORMAT, verbose=False, **options)


class Session:
    def __init__(self, path: str, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        with quiet():
            self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.shape = None
        quantized = any(d["dtype"].__name__ == "int8" for d in self.interpreter.get_tensor_details())
        self.executed_precision = "int8" if quantized else "float32"

    def __call__(self, x):
        if x.shape != self.shape:  # the signature's batch is -1: each batch size is a resize
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            with quiet():
                self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])
