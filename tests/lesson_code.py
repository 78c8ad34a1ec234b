"""A lesson's app code, read from its solution notebook and run as a module, for tests.

The code is never copied into tests: ``load_app(notebook, name)`` runs the notebook's cells tagged
``app-code`` as module ``name`` (``servekit.notebook_cells``, the one loader the tests and
``make bench`` share); ``unload`` undoes it.
"""

from __future__ import annotations

import types
from pathlib import Path

from servekit.notebook_cells import load_cells, unload
from servekit.paths import REPO_ROOT

TAG = "app-code"

__all__ = ["TAG", "load_app", "unload"]


def load_app(notebook: str | Path, name: str, tag: str = TAG) -> types.ModuleType:
    """Run ``notebook``'s (relative to the repository) cells tagged ``tag`` as module ``name``."""
    return load_cells(REPO_ROOT / notebook, (tag,), name=name)
