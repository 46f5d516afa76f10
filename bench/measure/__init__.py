"""Measuring cases: the matrix of cases, the time budget's plan, the harness and its clock, the device's ceilings,
the model cache and traces."""
