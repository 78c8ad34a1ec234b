"""Write the grader's test submissions: one tiny capstone that meets the contract, and copies of it
broken in one way each. ``python tests/grading_fixtures/make_fixtures.py`` rewrites them;
tests/test_grade.py checks that the stored files match this script.

Each variant's docstring-like comment says what is broken and which rubric points it must lose.
The app is a text-length service with @serve.batch (no model: these run in seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

IMPORTS = """\
# ruff: noqa: F401 - the variants share these imports; each uses some of them
import json
import shutil
import subprocess
import time
from pathlib import Path

import mlflow
import ray
import requests
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

import servekit"""

CAPSTONE = """\
CAPSTONE = {
    "app": "lengths",
    "route": "/lengths",
    "example": {"text": "hello world"},
    "bad_example": {"txt": "hello"},
    "batching": True,
    "mlflow_model": "capstone-lengths",
}"""

APP = """\
@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=16)
class TextLength:
    def __init__(self):
        self.sizes = []

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def lengths(self, texts: list[str]) -> list[int]:
        self.sizes.append(len(texts))
        return [len(t) for t in texts]

    def batch_sizes_seen(self) -> list[int]:
        return self.sizes[-1000:]

    async def __call__(self, request: Request):
        try:
            body = await request.json()
        except Exception:
            return JSONResponse({"error": 'the body must be JSON like {"text": "..."}'}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse({"error": "missing field 'text'"}, status_code=422)
        return {"length": await self.lengths(body["text"]), "model_version": 1}"""

DEPLOY = """\
servekit.start_ray(num_cpus=1, prestart_workers=False)
servekit.start_serve(access_log=False)
serve.run(TextLength.bind(), name=CAPSTONE["app"], route_prefix=CAPSTONE["route"])
url = servekit.serve_url(CAPSTONE["route"])
servekit.wait_until_healthy(CAPSTONE["app"], url)
print(requests.post(url, json=CAPSTONE["example"], timeout=30).text)"""

MLFLOW = """\
registry = servekit.SCRATCH / "capstone-mlflow"
registry.mkdir(parents=True, exist_ok=True)
mlflow.set_tracking_uri(f"sqlite:///{registry / 'mlflow.db'}")
client = mlflow.MlflowClient()
client.create_registered_model(CAPSTONE["mlflow_model"])


class Lengths(mlflow.pyfunc.PythonModel):  # the served model, as an MLflow model
    def predict(self, context, model_input):
        return [len(text) for text in model_input["text"]]


mlflow.pyfunc.save_model(registry / "model", python_model=Lengths(), pip_requirements=[])
version = client.create_model_version(CAPSTONE["mlflow_model"], source=str(registry / "model"))
client.set_registered_model_alias(CAPSTONE["mlflow_model"], "champion", version.version)
print("registered version", version.version)"""

LOADTEST = """\
report = servekit.run_load(servekit.http_json_sender(url, CAPSTONE["example"]), 60, 4, progress=False)
summary = report.summary() | {"error_rate": report.errors / max(report.total, 1)}
folder = servekit.SCRATCH / "capstone" / CAPSTONE["app"]
folder.mkdir(parents=True, exist_ok=True)
(folder / "loadtest.json").write_text(json.dumps(summary))
print(summary["requests"], summary["errors"])"""

CLEANUP = """\
serve.shutdown()
ray.shutdown()
shutil.rmtree(registry, ignore_errors=True)"""

BASE = [
    (
        "md",
        "# Capstone (grader test fixture)\n\nA tiny text-length service that meets the capstone contract.",
    ),
    ("code", IMPORTS),
    ("code", CAPSTONE),
    ("code", APP),
    ("code", DEPLOY),
    ("code", MLFLOW),
    ("code", LOADTEST),
    ("md", "## Cleanup"),
    ("cleanup", CLEANUP),
]


def _replace(cells, old: str, new: str):
    return [(kind, src.replace(old, new)) for kind, src in cells]


def _insert_before(cells, anchor: str, new: tuple[str, str]):
    i = next(i for i, (_, src) in enumerate(cells) if src == anchor)
    return [*cells[:i], new, *cells[i:]]


VARIANTS = {
    # full marks
    "capstone_ok": BASE,
    # the example gets plain text, not JSON: loses example_answered and, with no model_version to read,
    # mlflow_champion_served (10 + 10)
    "capstone_wrong_answer": _replace(
        BASE,
        'return {"length": await self.lengths(body["text"]), "model_version": 1}',
        "return PlainTextResponse(f\"length={await self.lengths(body['text'])}\")",
    ),
    # a cell raises before MLflow and the load test: loses mlflow_champion_served and loadtest_report
    # (10 + 10); the grader's own load test still finds the app serving
    "capstone_crash": _insert_before(
        BASE,
        MLFLOW,
        ("code", 'counts = {"requests": 0}\nprint("mean:", counts["total"] / counts["requests"])'),
    ),
    # the app is deleted before the checks: loses every check of the live app (85); its cleanup is clean
    "capstone_app_down": _insert_before(BASE, CLEANUP, ("code", 'serve.delete(CAPSTONE["app"])')),
    # no @serve.batch and batching False: loses batching (10)
    "capstone_no_batching": _replace(
        _replace(BASE, '"batching": True', '"batching": False'),
        "    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)\n",
        "",
    ),
    # waits forever before its load test: stopped at the whole-notebook limit, loses loadtest_report (10);
    # the grader's own load test passes; its cleanup cells still run
    "capstone_infinite_loop": _insert_before(
        BASE, LOADTEST, ("code", "while True:  # waits for a reply that never comes\n    time.sleep(0.1)")
    ),
    # starts a helper process it never stops and does not shut Ray down: loses cleanup_leaves_nothing (15)
    "capstone_leaks": _replace(
        _insert_before(BASE, LOADTEST, ("code", 'helper = subprocess.Popen(["sleep", "600"])')),
        CLEANUP,
        "serve.shutdown()\nshutil.rmtree(registry, ignore_errors=True)",
    ),
    # "@serve.batch" only in a comment, batching claimed: loses batching (10)
    "capstone_comment_batching": _replace(
        BASE,
        "    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)\n    async def lengths",
        "    # @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)\n    async def lengths",
    ),
    # a load-test report written without a load test, claiming a million req/s: loses loadtest_report (10)
    "capstone_forged_loadtest": _replace(
        BASE,
        LOADTEST,
        LOADTEST.replace(
            "\n".join(LOADTEST.splitlines()[:2]),  # the load test and its summary
            "summary = {\n"
            '    "requests": 10**6,\n    "errors": 0,\n    "error_rate": 0.0,\n    "throughput_rps": 10**6,\n'
            '    "p50_ms": 0.1,\n    "p95_ms": 0.2,\n    "p99_ms": 0.3,\n}',
        ),
    ),
    # the alias names version 1, the answers say version 2: loses mlflow_champion_served (10)
    "capstone_wrong_version": _replace(BASE, '"model_version": 1}', '"model_version": 2}'),
    # reads the hidden checks: flagged, not run, 0
    "capstone_cheat": _insert_before(
        BASE, DEPLOY, ("code", 'hidden = (servekit.REPO_ROOT / "grading" / "checks_10.py").read_text()')
    ),
}


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(new_markdown_cell(src))
        else:
            cell = new_code_cell(src)
            if kind == "cleanup":
                cell.metadata["tags"] = ["cleanup"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def rendered() -> dict[str, str]:
    return {f"{name}.ipynb": nbformat.writes(build(cells)) + "\n" for name, cells in VARIANTS.items()}


if __name__ == "__main__":
    for name, text in rendered().items():
        (HERE / name).write_text(text)
    print(f"wrote {len(VARIANTS)} notebooks to {HERE}", file=sys.stderr)
