"""A lesson's app code, read from its solution notebook and run as a module, for tests.

The code is never copied into tests: a solution notebook tags the cells that define its app
``app-code``, and ``load_app(notebook, name)`` runs exactly those cells, in order, as a new module
``name``. The module is registered with Ray's cloudpickle to be pickled *by value* (as a notebook's
``__main__`` is), so the replicas of a real cluster can rebuild its classes although no file of
that name exists.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat

from servekit.paths import REPO_ROOT

TAG = "app-code"


def app_cells(notebook: str | Path, tag: str = TAG) -> list[str]:
    """The sources of the code cells tagged ``tag`` in ``notebook`` (relative to the repository)."""
    nb = nbformat.read(REPO_ROOT / notebook, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]
    if not cells:
        raise LookupError(f"{notebook} has no code cell tagged {tag!r}")
    return cells


def load_app(notebook: str | Path, name: str, tag: str = TAG) -> types.ModuleType:
    """Run the cells tagged ``tag`` as module ``name``; returns it (call :func:`unload` when done)."""
    from ray import cloudpickle

    module = types.ModuleType(name)
    sys.modules[name] = module
    code = "\n\n".join(app_cells(notebook, tag))
    # tracebacks name the notebook and tag; their line numbers count in the joined cells
    exec(compile(code, f"<{notebook} cells tagged {tag}>", "exec"), module.__dict__)
    cloudpickle.register_pickle_by_value(module)
    return module


def unload(module: types.ModuleType) -> None:
    from ray import cloudpickle

    cloudpickle.unregister_pickle_by_value(module)
    sys.modules.pop(module.__name__, None)
