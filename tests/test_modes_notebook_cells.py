"""A notebook's tagged cells, loaded by servekit.modes and sent two pickles away (this process ->
run_in_mode's child -> its replica), still serve: lesson 06's FastAPI bench app answered 500 on
every request there while the cells ran in a bare dict (its pydantic body models came out "not
fully defined" in the replica).

Starts a cluster in a child process: run under the shared lock.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ray import cloudpickle

from servekit.modes import run_in_mode
from servekit.notebook_cells import load_cells

ROOT = Path(__file__).resolve().parents[1]
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the child cannot import this test module


async def _one_request_per_route(handle, url: str) -> dict[str, tuple[int, str]]:
    import requests

    answers = {}
    for route, body in (("noop", {"text": "I love this course!"}), ("predict", {"text": ""})):
        r = requests.post(f"{url}/{route}", json=body, timeout=60)
        answers[route] = (r.status_code, r.text[:200])
    return answers


def test_lesson06_bench_app_serves_in_a_mode_child():
    cells = vars(load_cells(ROOT / "solutions" / "06_fastapi_ingress.ipynb", ("app-code", "measure-code")))
    answers = run_in_mode(
        "default",
        cells["BenchOnServe"].bind(),
        _one_request_per_route,
        name="bench",
        route_prefix="/bench",
        health_path="/docs",
    )
    assert answers["noop"] == (200, '{"ok":true}')
    assert answers["predict"][0] == 422, answers  # the body model validates: an empty text is refused
