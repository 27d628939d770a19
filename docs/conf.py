"""Sphinx configuration (a start: the documentation issue adds the gallery)."""

project = "skmnist"
author = "skmnist developers"
extensions = ["sphinx.ext.autodoc", "numpydoc"]
numpydoc_show_class_members = False
html_theme = "pydata_sphinx_theme"
