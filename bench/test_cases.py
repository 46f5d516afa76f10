"""The matrix: one benchmark per case, grouped by model (options in bench/conftest.py)."""


def test_case(case, harness, benchmark):
    harness.run(case, benchmark)
