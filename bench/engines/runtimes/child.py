"""`python -m bench.engines.runtimes.child RUNTIME MODEL INPUT_SIZE PRECISION ROOT`: one export into the cache, in
a process of its own (exports.make_in_child starts it).

A converter runs in the process that calls it, and a converter can crash, hang or grow past the machine's memory
(tf2onnx converting VGG-16 grew a run's process past 24 GB, and the kernel killed the whole run). Here it can cost
only its own case. RUNTIME is the runtime's module (bench.engines.runtimes.litert, ...); the model is built afresh,
with weights of its own, which the export's reference output then holds (fidelity compares the runtime with it).
"""
from __future__ import annotations

import importlib
import sys


def main(argv=None) -> int:
    module_name, model_name, input_size, precision, root = argv if argv is not None else sys.argv[1:]
    from .. import start
    start("tensorflow")  # Keras's exports for the runtimes go through TensorFlow
    import models

    from . import exports
    runtime = importlib.import_module(module_name)
    model = models.build(model_name, input_shape=models.input_shape(model_name, input_size))
    try:
        exports.make(root, runtime, model, model_name, input_size, precision)
    except Exception as err:  # noqa: BLE001  (each converter fails in its own way: one line for the parent)
        print(exports.FAILED + exports.failure(runtime, err), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
