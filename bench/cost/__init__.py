"""What a model costs on paper (counts): parameters, MACs, FLOPs and activation memory, per layer and per model; the
counts the planner reads before building anything (facts); and `python -m bench.describe` (describe)."""
