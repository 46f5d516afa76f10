"""What a step moves to and from DRAM, estimated from a case's saved record: the roofline's operational intensity.

An estimate on paper, beside the cost model's counts; the report reads it from saved records, so it needs no Keras.
"""
from __future__ import annotations


def dram_bytes_per_step(case: dict) -> float | None:
    """float32 weights read once (training: read twice, gradients written) and every activation written and read once
    (training: kept for the backward pass and its gradient made, 4x). Caches catch part of it on a CPU, so a small
    model can sit above its bandwidth roof. None when the record lacks the counts."""
    if not case.get("params") or not case.get("activation_bytes_per_sample"):
        return None
    weights, activations = 4.0 * case["params"], case["activation_bytes_per_sample"] * case["batch_size"]
    return weights + 2 * activations if case["mode"] == "infer" else 3 * weights + 4 * activations
