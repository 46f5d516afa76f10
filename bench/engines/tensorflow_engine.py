"""TensorFlow's engine: tf.function steps (XLA through jit_compile), tf.distribute, the BFC allocator's peak and
TensorFlow's profiler."""
from __future__ import annotations

import contextlib
import gc
import json

import keras
import tensorflow as tf

from .shared import is_classifier, top_ops, training_recipe, xplane_files

NAME = "tensorflow"
XLA_SETTINGS = (False, True)
_remote_devices: tuple[str, ...] = ()  # name prefixes of a cluster's other workers' devices


def versions() -> dict:
    return {"tensorflow_version": tf.__version__}


def gpus() -> list[dict]:
    build, found = tf.sysconfig.get_build_info(), []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        found.append({"name": details.get("device_name", "GPU"),
                      "compute_capability": list(details.get("compute_capability", (0, 0))),
                      "cuda_version": build.get("cuda_version"), "cudnn_version": build.get("cudnn_version")})
    return found


def unsupported(case) -> str | None:
    return None


def out_of_memory(err: BaseException) -> bool:
    return isinstance(err, tf.errors.ResourceExhaustedError)


# --- steps ------------------------------------------------------------------------------------------------------
def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def synthetic_batch(model: keras.Model, batch_size: int, strategy=None):
    """Random inputs and targets, made on the device before any timing; under a strategy, `batch_size` of each on
    every replica's device."""
    def make(_context=None):
        x = tf.random.uniform((batch_size, *model.input_shape[1:]))
        out_shape = model.output_shape
        if is_classifier(model):
            y = tf.random.uniform((batch_size,), maxval=out_shape[-1], dtype=tf.int32)
        else:
            y = tf.random.uniform((batch_size, *out_shape[1:]))
        return x, y

    if strategy is None:
        return make()
    return tuple(strategy.experimental_distribute_values_from_function(lambda context, i=i: make(context)[i])
                 for i in range(2))


def batch_signature(model: keras.Model) -> list[tf.TensorSpec]:
    """The step's inputs with the batch left open: one trace serves every batch size (a second batch size's first
    call fell from 1.35 s to 0.43 s for ResNet-50, at the same step time), and XLA compiles each shape it meets."""
    out_shape = model.output_shape
    y = tf.TensorSpec((None,), tf.int32) if is_classifier(model) else tf.TensorSpec((None, *out_shape[1:]))
    return [tf.TensorSpec((None, *model.input_shape[1:])), y]


def _compiled(replica_step, model: keras.Model, xla: bool, strategy):
    """One step: on its own, or run by every replica of `strategy` (whose inputs are per-replica values, so no
    input signature; bench.measure.matrix keeps XLA off there)."""
    if strategy is None:
        return tf.function(replica_step, jit_compile=xla, input_signature=batch_signature(model))
    return tf.function(lambda x, y: strategy.run(replica_step, args=(x, y)))


def inference_step(model: keras.Model, *, xla: bool, strategy=None):
    def step(x, y):
        return model(x, training=False)
    return _compiled(step, model, xla, strategy)


def training_step(model: keras.Model, *, xla: bool, precision: str, strategy=None):
    """Forward with training=True, loss, gradients and the update of shared.training_recipe. Under a
    strategy a Keras loss is already divided by the replicas, and the optimizer all-reduces the sum of their
    gradients: the gradient of the global batch's mean loss (tests/test_scale.py checks it)."""
    with _scope(strategy):  # the optimizer's slots mirrored like the weights
        optimizer, loss_fn = training_recipe(model, precision)

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return _compiled(step, model, xla, strategy)


def sync_only_local_devices(remote_prefixes) -> None:
    """In a cluster, `wait` syncs this worker's own devices (sync_devices fails on the other workers')."""
    global _remote_devices
    _remote_devices = tuple(remote_prefixes)


def wait(result=None) -> None:
    """Returns once every device of this host has finished its queued work."""
    if not _remote_devices:
        tf.test.experimental.sync_devices()
        return
    # what sync_devices does, for this worker's devices only: it fails on a cluster's remote ones
    for found in tf.config.list_logical_devices():
        if not found.name.startswith(_remote_devices):
            with tf.device(found.name):
                tf.raw_ops.SyncDevice()
    from tensorflow.python.eager import context
    context.async_wait()


def clear() -> None:
    keras.backend.clear_session()
    _drop_custom_gradients()
    gc.collect()


def _drop_custom_gradients() -> None:
    """Unpin the graphs of finished training steps, which clear_session leaves alive.

    Tracing a training step registers a `CustomGradient-N` in TensorFlow's global gradient registry; its closure
    holds the step's graph and through it the model's weights and optimizer slots (tensorflow#80895, still open
    in 2.21). Without this a run of the zoo kept 10 GiB of dead models and slowed down as it went.
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if isinstance(registry, dict):
        for name in [name for name in registry if name.startswith("CustomGradient-")]:
            del registry[name]


# --- peak memory: the BFC allocator's statistics (on the CPU with TF_CPU_ALLOCATOR_USE_BFC=true, which
# bench.engines.start sets before TensorFlow starts) ------------------------------------------------------------
def _memory_device() -> str:
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def reset_peak_memory() -> None:
    try:
        tf.config.experimental.reset_memory_stats(_memory_device())
    except (ValueError, RuntimeError):
        pass  # an allocator without statistics: peak_memory() says so


def peak_memory() -> tuple[int | None, str | None]:
    try:
        return int(tf.config.experimental.get_memory_info(_memory_device())["peak"]), None
    except (ValueError, RuntimeError):
        return None, "this device's allocator keeps no statistics"


# --- ceiling probes ---------------------------------------------------------------------------------------------
def probe(fn, xla: bool):
    return tf.function(fn, jit_compile=xla)


def uniform(shape, dtype_name: str):
    return tf.cast(tf.random.uniform(shape), dtype_name)


matmul = tf.matmul


def conv3x3(x, w):
    return tf.nn.conv2d(x, w, 1, "SAME")


def add_one(x):
    return x + 1.0


# --- traces -----------------------------------------------------------------------------------------------------
def record_trace(logdir: str, mode: str, step, args, steps: int) -> None:
    tf.profiler.experimental.start(logdir)
    try:
        for i in range(steps):
            with tf.profiler.experimental.Trace(mode, step_num=i, _r=1):
                wait(step(*args))
    finally:
        tf.profiler.experimental.stop()
    for path in xplane_files(logdir):
        keep_programs_that_ran(path)


def keep_programs_that_ran(path: str) -> None:
    """Drop the HLO of XLA programs that did not run in this trace from the profiler's metadata plane.

    The profiler writes the HLO of every XLA program still loaded in the process into every trace, and TensorFlow
    keeps them all loaded: late in a run of the zoo each trace carried 25 stale programs (19 MB), took 4 s to read
    and the run's traces took 1.7 GB.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    metadata = [plane for plane in space.planes if plane.name == "/host:metadata"]
    if not metadata:
        return
    ran = set()
    for plane in space.planes:
        program_stats = {key for key, stat in plane.stat_metadata.items() if stat.name == "program_id"}
        stats = [stat for line in plane.lines for event in line.events for stat in event.stats]
        stats += [stat for event in plane.event_metadata.values() for stat in event.stats]
        ran.update(stat.int64_value or stat.uint64_value for stat in stats if stat.metadata_id in program_stats)
    programs = metadata[0].event_metadata
    for program_id in [key for key in programs if key not in ran]:
        del programs[program_id]
    with open(path, "wb") as f:
        f.write(space.SerializeToString())


def read_top_ops(logdir: str, steps: int, limit: int) -> list[dict]:
    """The operations with the most self time per step, from the profiler's own framework_op_stats tool."""
    from xprof.convert.raw_to_tool_data import xspace_to_tool_data

    paths = xplane_files(logdir)
    if not paths:
        raise FileNotFoundError(f"the profiler wrote no .xplane.pb under {logdir}")
    data = xspace_to_tool_data(paths, "framework_op_stats", {})
    table = json.loads(data[0] if isinstance(data, tuple) else data)
    table = table[0] if isinstance(table, list) else table
    columns = [col["id"] for col in table["cols"]]
    rows = [dict(zip(columns, (cell.get("v") for cell in row["c"]))) for row in table["rows"]]
    rows = [r for r in rows if r["type"] != "IDLE" and r["total_self_time"] > 0]
    on_device = [r for r in rows if r["host_or_device"] == "Device"]
    rows = on_device or rows  # on a GPU the device's ops are the step time; on a CPU the host's are
    return top_ops([(r["operation"], r["type"], r["total_self_time"], r["host_or_device"]) for r in rows],
                   steps, limit)
