"""A notebook's tagged code cells, run as a module that Ray pickles by value (tests and benchmarks).

The code is never copied out of a lesson: a solution notebook tags the cells that define its app
``app-code`` (and its measurement ``measure-code``), and :func:`load_cells` runs exactly those cells,
in order, as a new module. The module is a real one (in ``sys.modules``, as a kernel's ``__main__``
is) and registered with Ray's cloudpickle to be pickled *by value*, so the replicas of a real
cluster rebuild its classes although no file of that name exists. Cells run in a bare dict instead
gave FastAPI body models that a replica, two pickles away, called "not fully defined".
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path


def tagged_sources(notebook: str | Path, tags: Sequence[str]) -> list[str]:
    """The sources of ``notebook``'s code cells that carry any of ``tags``, in order."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and set(tags) & set(c.get("metadata", {}).get("tags", []))
    ]


def tagged_code(notebook: str | Path, tags: Sequence[str]) -> str:
    """Those sources joined into one program."""
    return "\n\n".join(tagged_sources(notebook, tags))


def load_cells(
    notebook: str | Path, tags: Sequence[str] = ("app-code",), name: str | None = None
) -> types.ModuleType:
    """Run the cells tagged with any of ``tags`` as module ``name`` (call :func:`unload` when done).

    Raises LookupError when no cell carries a tag (a renamed tag must not load an empty module).
    """
    from ray import cloudpickle

    sources = tagged_sources(notebook, tags)
    if not sources:
        raise LookupError(f"{notebook} has no code cell tagged {' or '.join(map(repr, tags))}")
    module = types.ModuleType(name or f"lesson_{Path(notebook).stem}")
    sys.modules[module.__name__] = module
    # dont_inherit: this file's `from __future__ import annotations` must not turn the cells' type
    # hints into strings, which a kernel never does (FastAPI then reads a typed body another way).
    # Tracebacks name the notebook and tags; their line numbers count in the joined cells.
    where = f"<{notebook} cells tagged {', '.join(tags)}>"
    code = compile("\n\n".join(sources), where, "exec", dont_inherit=True)
    exec(code, module.__dict__)
    cloudpickle.register_pickle_by_value(module)
    return module


def unload(module: types.ModuleType) -> None:
    """Undo :func:`load_cells`."""
    from ray import cloudpickle

    cloudpickle.unregister_pickle_by_value(module)
    sys.modules.pop(module.__name__, None)
