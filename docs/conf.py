"""Sphinx configuration: numpydoc API reference, sphinx-gallery examples.

``tox -e docs`` builds with warnings as errors and runs every example; with
``SKMNIST_FAST=1`` (as tox sets it) the examples train on a subset for one epoch.
"""

import os
import sys
from pathlib import Path

import skmnist

# The gallery's sort key lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))
# Examples draw into files, never into windows.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "skmnist"
author = "skmnist developers"
copyright = "skmnist developers"
version = release = skmnist.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
# _benchmark_*.rst: written by benchmarks/speed.py --rst-dir docs, included by
# performance.rst.
exclude_patterns = [
    "_build",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "_benchmark_*.rst",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
# Parameter and attribute tables come from the docstrings; the method tables that
# numpydoc would add list scikeras's undocumented internals too.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "_gallery_order.example_order",
    # Link the API pages to the examples that use each name.
    "doc_module": ("skmnist",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
}

html_theme = "pydata_sphinx_theme"
html_title = f"skmnist {version}"
html_theme_options = {"navigation_with_keys": False}


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    # scikit-learn generates set_fit_request & co. on every estimator; their
    # docstrings link into scikit-learn's own documentation.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
