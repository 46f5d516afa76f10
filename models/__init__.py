"""The cnnbench model zoo: `build(name)` any registered CNN, `names(pattern)` to list them.

Importing the package costs nothing: the family modules, and Keras with them, load when the registry is first used,
so `models.registry` (names, sorting, input sizes) serves readers that never build a model.
"""
__all__ = ["Entry", "build", "entry", "input_shape", "names", "select"]


def __getattr__(name):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import inception, plain, registry, resnet, transfer  # noqa: F401  (each registers its models)
    return getattr(registry, name)
