"""The matrix: one benchmark per case, grouped by model (options in bench/plugin/options.py)."""


def test_case(case, harness, benchmark):
    try:
        harness.run(case, benchmark)
    finally:
        harness.record(benchmark)  # into the journal at once; a skipped case was journaled by its skip
