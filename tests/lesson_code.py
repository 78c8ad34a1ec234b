"""A lesson's app code, read from its solution notebook and run as a module, for tests.

The code is never copied into tests: ``load_app(notebook, name)`` runs the notebook's cells tagged
``app-code`` as module ``name`` (``servekit.notebook_cells``, the one loader the tests and
``make bench`` share); ``unload`` undoes it.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from servekit.notebook_cells import load_cells, unload
from servekit.paths import REPO_ROOT

TAG = "app-code"

__all__ = ["TAG", "deploy", "lesson_app", "load_app", "unload"]


def load_app(notebook: str | Path, name: str, tag: str = TAG) -> types.ModuleType:
    """Run ``notebook``'s (relative to the repository) cells tagged ``tag`` as module ``name``."""
    return load_cells(REPO_ROOT / notebook, (tag,), name=name)


def deploy(app: Any, name: str, health_path: str = "") -> str:
    """``serve.run(app)`` as app ``name`` at ``/name``; returns its URL once ``url + health_path`` answers."""
    from ray import serve

    import servekit

    serve.run(app, name=name, route_prefix=f"/{name}")
    url = servekit.serve_url(f"/{name}")
    servekit.wait_until_healthy(name, url + health_path)
    return url


@contextlib.contextmanager
def lesson_app(
    notebook: str, name: str, build: Callable[[types.ModuleType], Any], health_path: str = ""
) -> Iterator[str]:
    """Deploy ``build(module of the notebook's app-code cells)`` as app ``name``; yield its URL; then
    delete the app and unload the module, whatever happened meanwhile."""
    from ray import serve

    lesson = load_app(notebook, f"lesson_{name}")
    try:
        yield deploy(build(lesson), name, health_path)
    finally:
        serve.delete(name)
        unload(lesson)
