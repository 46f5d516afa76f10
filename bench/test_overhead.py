"""What the harness adds to a step: pytest-benchmark's timed rounds against bare timed calls, interleaved.

Recorded (and shown in the report's machine table), never asserted: two medians taken apart drift by more than the
overhead on a shared machine, so a bound on their ratio failed runs at random. Here each harness round follows a
bare call of the same compiled step (pedantic's untimed `setup`), so drift reaches both sides alike.
"""
import statistics

import models
from bench.engines import current as engine
from bench.engines.shared import dtype_policy
from bench.measure.timing import timed_call

ROUNDS = 60


def test_harness_overhead(benchmark):
    with dtype_policy("float32"):
        model = models.build("resnet20")
    step = engine().inference_step(model, xla=engine().XLA_SETTINGS[0])  # XLA off where the engine has it
    args = engine().synthetic_batch(model, 8)
    for _ in range(5):
        timed_call(step, *args)
    bare = []

    def bare_call_first():
        bare.append(timed_call(step, *args))

    benchmark.group = "harness overhead"
    benchmark.pedantic(timed_call, args=(step, *args), setup=bare_call_first, rounds=ROUNDS, warmup_rounds=0)
    if benchmark.stats is None:  # --benchmark-disable
        return
    harness = benchmark.stats.stats.data
    benchmark.extra_info.update({
        "overhead_pairs": len(bare), "bare_median_ms": statistics.median(bare) * 1e3,
        "harness_median_ms": statistics.median(harness) * 1e3,
        # harness throughput over bare throughput, from the median of the paired ratios
        "throughput_ratio": statistics.median(b / h for b, h in zip(bare, harness)),
    })
