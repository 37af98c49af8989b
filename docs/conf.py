"""Sphinx configuration for the deapnas documentation."""
import os
import sys

# The package is normally installed in the virtual environment (pip install -e .); putting the
# repository root on the path as well lets the documentation build from a bare checkout.
sys.path.insert(0, os.path.abspath(".."))

project = "deapnas"
author = "the deapnas authors"
copyright = "deapnas authors"
release = "0.1.0"
version = "0.1"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "examples"]
templates_path = []

html_theme = "alabaster"
html_theme_options = {
    "description": "Evolutionary neural architecture search with DEAP",
    "fixed_sidebar": True,
}

# -- autodoc -------------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
}
# Types go into the parameter descriptions, and only for parameters the docstring documents;
# the signatures stay short.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
# An undocumented ``forward`` would otherwise show torch.nn.Module.forward's generic docstring.
autodoc_inherit_docstrings = False
# Importing deapnas.report selects matplotlib's Agg backend; nothing else needs mocking.

# The docstrings use reST field lists (:param x:); napoleon also accepts Google/NumPy sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = True

nitpicky = False
