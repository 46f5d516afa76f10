"""JAX's engine (Keras 3 on KERAS_BACKEND=jax): jitted stateless steps, block_until_ready, the device's
memory_stats and jax.profiler.

Every JAX step is compiled by XLA: there is no XLA-off setting, and no tf.distribute.
"""
from __future__ import annotations

import gc
import re

import jax
import jax.numpy as jnp
import keras

from .shared import is_classifier, top_ops, training_recipe, xplane_files

NAME = "jax"
XLA_SETTINGS = (True,)
NO_XLA_OFF = "JAX has no XLA-off setting: every step is jit-compiled by XLA (the XLA-on case is measured)"


def versions() -> dict:
    import jaxlib

    return {"jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__}


def gpus() -> list[dict]:
    found = []
    for device in jax.devices():
        if device.platform == "gpu":
            capability = [int(part) for part in str(getattr(device, "compute_capability", "0.0")).split(".")[:2]]
            found.append({"name": device.device_kind, "compute_capability": capability})
    return found


def unsupported(case) -> str | None:
    return NO_XLA_OFF if not case.xla else None


def out_of_memory(err: BaseException) -> bool:
    return isinstance(err, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(err)


# --- steps ------------------------------------------------------------------------------------------------------
def synthetic_batch(model: keras.Model, batch_size: int, strategy=None):
    """Random inputs and targets, made on the device before any timing."""
    x_key, y_key = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(x_key, (batch_size, *model.input_shape[1:]))
    out_shape = model.output_shape
    if is_classifier(model):
        y = jax.random.randint(y_key, (batch_size,), 0, out_shape[-1])
    else:
        y = jax.random.uniform(y_key, (batch_size, *out_shape[1:]))
    return jax.block_until_ready((x, y))


def _values(variables):
    # copies: the training step donates its state, and the model's own variables must stay readable
    return [jnp.array(v.value, copy=True) for v in variables]


def inference_step(model: keras.Model, *, xla: bool, strategy=None):
    """A jitted `stateless_call` over the model's weights as they are now."""
    trainable, non_trainable = _values(model.trainable_variables), _values(model.non_trainable_variables)

    @jax.jit
    def forward(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    return lambda x, y: forward(trainable, non_trainable, x)


class TrainingStep:
    """Forward with training=True, loss, gradients and the Keras optimizer's stateless update, in one jitted
    function whose state (weights, BatchNorm statistics, optimizer slots) goes in and comes out each step."""

    def __init__(self, model: keras.Model, optimizer, loss_fn):
        self.state = (_values(model.trainable_variables), _values(model.non_trainable_variables),
                      _values(optimizer.variables))

        def loss_and_updates(trainable, non_trainable, optimizer_values, x, y):
            y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            loss = loss_fn(y, y_pred)
            # loss scaling (mixed_float16) reads the optimizer's scale from the state handed in, as Keras's trainer
            with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
                scaled = optimizer.scale_loss(loss)
            return scaled, (loss, non_trainable)

        def step(state, x, y):
            trainable, non_trainable, optimizer_values = state
            (_, (loss, non_trainable)), grads = jax.value_and_grad(loss_and_updates, has_aux=True)(
                trainable, non_trainable, optimizer_values, x, y)
            trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads, trainable)
            return loss, (trainable, non_trainable, optimizer_values)

        self._step = jax.jit(step, donate_argnums=0)  # the old state's buffers hold the new one

    def __call__(self, x, y):
        loss, self.state = self._step(self.state, x, y)
        return loss, self.state  # wait() blocks on all of it: the update is part of the step


def training_step(model: keras.Model, *, xla: bool, precision: str, strategy=None):
    return TrainingStep(model, *training_recipe(model, precision))


def wait(result=None) -> None:
    """JAX dispatches asynchronously: a step has finished when what it returned is ready."""
    jax.block_until_ready(result)


def clear() -> None:
    keras.backend.clear_session()
    jax.clear_caches()  # the compiled steps of the models just freed
    gc.collect()


# --- peak memory: the device's memory_stats, which the CPU device does not have --------------------------------
_peak_at_reset = None  # the process's peak when the case began


def _stats() -> dict | None:
    return jax.local_devices()[0].memory_stats()


def reset_peak_memory() -> None:
    global _peak_at_reset
    stats = _stats()
    _peak_at_reset = stats.get("peak_bytes_in_use") if stats else None


def peak_memory() -> tuple[int | None, str | None]:
    """JAX keeps one peak for the whole process and cannot reset it: a case's peak is known only where it set a
    new one."""
    stats = _stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None, f"JAX's {jax.local_devices()[0].platform.upper()} device has no memory_stats"
    peak = stats["peak_bytes_in_use"]
    if _peak_at_reset is not None and peak <= _peak_at_reset:
        return None, "below an earlier case's peak (JAX's peak cannot be reset)"
    return int(peak), None


# --- ceiling probes ---------------------------------------------------------------------------------------------
def probe(fn, xla: bool):
    return jax.jit(fn)


def uniform(shape, dtype_name: str):
    return jax.random.uniform(jax.random.key(0), shape).astype(dtype_name)


matmul = jnp.matmul


def conv3x3(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def add_one(x):
    return x + 1.0


# --- traces -----------------------------------------------------------------------------------------------------
WRAPPERS = re.compile(r"^(ThunkExecutor::|\$)")  # the executor's own spans around the HLO operations


def record_trace(logdir: str, mode: str, step, args, steps: int) -> None:
    jax.profiler.start_trace(logdir)
    try:
        for i in range(steps):
            with jax.profiler.StepTraceAnnotation(mode, step_num=i):
                wait(step(*args))
    finally:
        jax.profiler.stop_trace()


def read_top_ops(logdir: str, steps: int, limit: int) -> list[dict]:
    """The HLO operations with the most self time per step, read from the trace's events.

    The profiler's framework_op_stats tool has no rows for a JAX trace on a CPU (only IDLE): the operations are
    events on the XLA thread-pool lines (a GPU's on its device plane's "XLA Ops" line), so they are summed here.
    """
    from jax.profiler import ProfileData

    paths = xplane_files(logdir)
    if not paths:
        raise FileNotFoundError(f"the profiler wrote no .xplane.pb under {logdir}")
    totals = {}
    for path in paths:
        planes = list(ProfileData.from_file(path).planes)
        device = [line for p in planes if p.name.startswith("/device:") for line in p.lines if line.name == "XLA Ops"]
        lines = device or [line for p in planes if p.name.startswith("/host:") for line in p.lines
                           if line.name != "python"]
        where = "Device" if device else "Host"
        for line in lines:
            for name, self_ns in _self_times(line.events):
                if not WRAPPERS.match(name):
                    totals[name] = totals.get(name, 0.0) + self_ns / 1e3
    rows = [(name, re.sub(r"\.\d+$", "", name), total, where) for name, total in totals.items() if total > 0]
    return top_ops(rows, steps, limit)


def _self_times(events):
    """(name, self time in ns) of each event of a line: its duration less that of the events nested in it."""
    stack, result = [], []  # stack: (end, index into result) of the enclosing events
    for event in sorted(events, key=lambda e: (e.start_ns, -e.duration_ns)):
        start, end = event.start_ns, event.start_ns + event.duration_ns
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack:
            result[stack[-1][1]][1] -= event.duration_ns
        result.append([event.name, event.duration_ns])
        stack.append((end, len(result) - 1))
    return result
