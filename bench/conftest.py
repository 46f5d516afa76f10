"""What `pytest bench/` finds: the cnnbench plugin's hooks and fixture (bench/plugin/)."""
from bench.plugin.hooks import *  # noqa: F401,F403
