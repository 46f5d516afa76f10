"""cnnbench's measuring side: cost model, benchmark harness, traces and reports."""
