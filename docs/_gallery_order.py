"""The order of the examples in the gallery: from the notebook to the extras."""

_ORDER = [
    "plot_seed_notebook.py",
    "plot_diagnostics.py",
    "plot_grid_search.py",
    "plot_early_stopping.py",
    "plot_own_digits.py",
    "plot_persistence.py",
    "plot_onnx_export.py",
    "plot_dask_search.py",
]


def example_order(filename: str) -> tuple:
    """Sort key of an example file: listed ones first, in list order."""
    name = filename.rsplit("/", 1)[-1]
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)
