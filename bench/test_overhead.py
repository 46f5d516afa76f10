"""The harness adds nothing measurable: its median against a bare loop over the same compiled function."""
import statistics

import models
from bench.steps import dtype_policy, inference_step, synthetic_batch
from bench.timing import timed_call

ROUNDS = 60
MIN_THROUGHPUT_RATIO = 0.98


def _bare_median(step, args) -> float:
    return statistics.median(timed_call(step, *args) for _ in range(ROUNDS))


def test_harness_overhead(benchmark):
    with dtype_policy("float32"):
        model = models.build("resnet20")
    step = inference_step(model, xla=False)
    args = synthetic_batch(model, 8)
    for _ in range(5):
        timed_call(step, *args)
    bare_before = _bare_median(step, args)
    benchmark.group = "harness overhead"
    benchmark.pedantic(timed_call, args=(step, *args), rounds=ROUNDS, iterations=1, warmup_rounds=0)
    if benchmark.stats is None:  # --benchmark-disable
        return
    bare = (bare_before + _bare_median(step, args)) / 2  # bracketing the harness evens out drift
    ratio = bare / benchmark.stats.stats.median  # harness throughput over bare-loop throughput
    benchmark.extra_info.update({"bare_median_ms": bare * 1e3, "throughput_ratio": ratio})
    assert ratio >= MIN_THROUGHPUT_RATIO, f"the harness is {100 * (1 - ratio):.1f}% slower than a bare loop"
