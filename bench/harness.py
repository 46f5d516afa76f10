"""One case, measured right: build (cached), compile timed apart, pilot, timed rounds, record."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
import tensorflow as tf

from models.info import depth

from . import device, memory
from .matrix import Case, Matrix
from .steps import ModelCache, inference_step, synthetic_batch, training_step
from .stats import latency_summary_ms, median_error
from .timing import Budget, pilot, plan_rounds, timed_call

SCHEMA_VERSION = 2  # 2: p90/p99 null below their sample counts; median_error
OOM_ERRORS = (tf.errors.ResourceExhaustedError,)


def flops_per_step(case: Case, cost) -> float:
    per_sample = cost.flops if case.mode == "infer" else cost.training_flops
    return per_sample * case.batch_size


def _oom_key(case: Case):
    return case.model, case.mode, case.precision, case.xla


@dataclass
class Harness:
    matrix: Matrix
    budget: Budget
    tracer: object | None = None  # bench.trace.Tracer, when traces are on
    peaks: device.Peaks = field(default_factory=device.Peaks)
    cache: ModelCache = field(default_factory=ModelCache)
    out_of_memory: dict = field(default_factory=dict)  # (model, mode, precision, xla) -> smallest failing batch
    skipped: list = field(default_factory=list)  # {"case", "reason"} for the saved JSON

    def skip(self, case: Case, reason: str):
        self.skipped.append({"case": case.id, "reason": reason})
        pytest.skip(reason)

    def check_runnable(self, case: Case) -> None:
        earlier = next((skip["reason"] for skip in self.skipped if skip["case"] == case.id), None)
        if earlier:  # by an earlier pass
            pytest.skip(earlier)
        if case.precision not in device.fast_precisions() and not self.matrix.explicit_precisions:
            self.skip(case, f"{case.precision} is not fast on {device.device_name()}; name it in --precision to run it")
        failed_at = self.out_of_memory.get(_oom_key(case))
        if failed_at is not None and case.batch_size > failed_at:
            self.skip(case, f"out of memory at batch {failed_at}")

    def check_step_time(self, case: Case, cost) -> None:
        """On a slow device, a step that needs seconds even at the measured peak is skipped if the matrix says so."""
        limit = self.matrix.max_step_seconds
        if limit:
            at_peak = flops_per_step(case, cost) / self.peaks.flops(case.precision)
            if at_peak > limit:
                self.skip(case, f"a step needs at least {at_peak:.3g} s at the measured peak, over the "
                                f"{limit:g} s limit (--max-step-seconds 0 runs it)")

    def budget_for(self, case: Case) -> Budget:
        """A pass's share of the case's time; the latency scenario (`--latency-samples N`) times N single-sample
        steps in its first pass, within its own time limit."""
        if self.matrix.latency_samples and case.mode == "infer" and case.batch_size == 1 and case.pass_index == 1:
            return replace(self.budget, min_rounds=max(self.budget.min_rounds, self.matrix.latency_samples),
                           max_seconds=self.matrix.latency_seconds, within_time=True)
        return replace(self.budget, max_seconds=self.budget.max_seconds / self.matrix.passes)

    def make_step(self, case: Case, model):
        if case.mode == "infer":
            return inference_step(model, xla=case.xla)
        return training_step(model, xla=case.xla, precision=case.precision)

    def run(self, case: Case, benchmark) -> None:
        self.check_runnable(case)
        benchmark.group = case.model
        try:
            self._measure(case, benchmark)
        except OOM_ERRORS:
            self.out_of_memory[_oom_key(case)] = case.batch_size
            self.cache.clear()
            self.skip(case, f"out of memory at batch {case.batch_size}")

    def _measure(self, case: Case, benchmark) -> None:
        model, cost = self.cache.get(case.model, case.precision, self.matrix.input_size)
        self.check_step_time(case, cost)
        x, y = synthetic_batch(model, case.batch_size)
        step = self.make_step(case, model)
        device.sync()
        memory.reset_peak()
        compile_s = timed_call(step, x, y)  # tracing (+ XLA compile) and the first run
        budget = self.budget_for(case)
        rounds, stop_reason = plan_rounds(pilot(step, (x, y), budget), budget)
        benchmark.pedantic(timed_call, args=(step, x, y), rounds=rounds, iterations=1, warmup_rounds=0)
        peak_memory = memory.peak_bytes()
        if benchmark.stats is None:  # --benchmark-disable: the step ran once, nothing to record
            return
        machine_speed = self.peaks.speed_now()
        samples = list(benchmark.stats.stats.data)
        latency = latency_summary_ms(samples)
        median_s = latency["p50"] / 1e3
        error = median_error(samples)
        step_flops = flops_per_step(case, cost)
        achieved = step_flops / median_s
        benchmark.extra_info.update({
            "schema_version": SCHEMA_VERSION, "case": case.id, "model": case.model, "mode": case.mode,
            "batch_size": case.batch_size, "requested_batch_size": case.batch_size, "precision": case.precision,
            "xla": case.xla, "device": device.device_name(), "input_shape": list(cost.input_shape),
            "params": cost.params, "trainable_params": cost.trainable_params, "depth": depth(model),
            "macs_per_sample": cost.macs,
            "flops_per_sample": cost.flops, "activation_bytes_per_sample": cost.activation_bytes,
            "flops_per_step": step_flops, "latency_ms": latency,
            "throughput": case.batch_size / median_s, "compile_s": compile_s,
            "achieved_tflops": achieved / 1e12, "mfu": achieved / self.peaks.flops(case.precision),
            "peak_memory_bytes": peak_memory, "rounds": len(samples), "stop_reason": stop_reason,
            "cv": latency["stdev"] / latency["mean"] if latency["mean"] else 0.0,
            "median_error": error, "target_error": self.budget.target_error,
            "reached_target": error is not None and error <= self.budget.target_error,
            "machine_speed_flops": machine_speed, "pass": case.pass_index, "passes": self.matrix.passes,
            "round_ms": [float(f"{t * 1e3:.5g}") for t in samples],  # each pass's rounds, pooled by the report
        })
        if self.tracer is not None and case.pass_index == 1:
            benchmark.extra_info.update(self.tracer.capture(case, step, (x, y), median_s))
