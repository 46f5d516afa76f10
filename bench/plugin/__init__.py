"""The pytest plugin that `pytest bench/` loads (through bench/conftest.py): options, one session object, the
console, resume, what goes into the saved JSON, and a cluster of sessions on one machine."""
