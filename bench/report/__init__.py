"""Reports from saved runs: reading runs and journals, noise and verdicts, findings, tables, plots, HTML and
comparisons. It reads JSON only: no Keras, no engine, no model runs here (`python -m bench.report`)."""
