"""Show the lines of a course module that a lesson is about, and where they live.

A lesson that deploys an importable module (``course_apps/...``) by import path explains a few of its
functions; printing the whole module buries them (83 to 285 lines). ``show_source`` prints just the
functions, methods or classes named, each under its file and line range, so a learner can open the
file at that place for the rest.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

from servekit.paths import REPO_ROOT


def source_of(obj: object) -> str:
    """``obj``'s source (decorators included), dedented, under a ``# <file>, lines a-b`` heading; the
    file is relative to the repository when it lies inside it. A Serve deployment is unwrapped to its
    class or function."""
    obj = getattr(obj, "func_or_class", obj)  # a @serve.deployment: its user class or function
    lines, start = inspect.getsourcelines(obj)
    path = Path(inspect.getsourcefile(obj) or "?").resolve()
    where = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path.name
    return f"# {where}, lines {start}-{start + len(lines) - 1}\n" + textwrap.dedent("".join(lines)).rstrip()


def show_source(*objs: object) -> None:
    """Print :func:`source_of` each of ``objs``, a blank line between them."""
    print("\n\n".join(source_of(obj) for obj in objs))
