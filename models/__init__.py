"""The cnnbench model zoo: `build(name)` any registered CNN, `names(pattern)` to list them."""
from . import inception, plain, resnet, transfer  # noqa: F401  (each registers its models)
from .registry import Entry, build, entry, names, select

__all__ = ["Entry", "build", "entry", "names", "select"]
