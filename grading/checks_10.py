"""Hidden checks of the capstone (assignment 10); points in rubric_10.json. Instructors only.

The grader (servekit/grade.py) calls ``check_<id>(live)`` for each rubric check but
``cleanup_leaves_nothing`` (the grader's own), from its own process, after the submission's last
cell before its cleanup cells ran. ``live.kernel`` is what the injected cell printed from the
submission's kernel (untrusted: validate it); HTTP requests go out from the grader.
Each check returns ``(passed, reason)``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

from servekit.grader.rubric import short

#: Runs in the submission's kernel (body of ``async def __grader_extra(out)``). Besides CAPSTONE, it
#: sends a burst of BURST concurrent copies of the example over HTTP and asks the app's ingress, through
#: its handle, for the batch sizes it saw (``batch_sizes_seen()``, named by the contract) before and after.
BURST = 16
PROBE = f"""
cap = globals().get("CAPSTONE")
out["capstone"] = cap if isinstance(cap, dict) else None
out["capstone_type"] = type(cap).__name__
port = out.get("serve_port") or out.get("port")
if isinstance(cap, dict) and isinstance(port, int) and out.get("serve_apps"):
    import asyncio, json as json_, requests
    from ray import serve
    handle = serve.get_app_handle(str(cap.get("app")))
    url = "http://127.0.0.1:%d/%s" % (port, str(cap.get("route", "/")).lstrip("/"))
    body = cap.get("example")
    def post(i):
        try:
            if isinstance(body, (str, bytes)):
                kind = {{"Content-Type": "application/json"}}
                return requests.post(url, data=body, headers=kind, timeout=60).status_code
            return requests.post(url, json=body, timeout=60).status_code
        except Exception as exc:
            return repr(exc)[:200]
    async def sizes():
        seen = await asyncio.wait_for(handle.batch_sizes_seen.remote(), 20)
        return [int(n) for n in list(seen)[-1000:]]
    try:
        before = await sizes()
    except Exception as exc:
        out["batch_sizes_error"] = repr(exc)[:300]
        before = None
    import concurrent.futures
    loop, pool = asyncio.get_running_loop(), concurrent.futures.ThreadPoolExecutor({BURST})
    try:  # all at once: the default executor runs only (cores + 4) at a time
        statuses = await asyncio.gather(*(loop.run_in_executor(pool, post, i) for i in range({BURST})))
    finally:
        pool.shutdown(wait=False)
    out["burst_statuses"] = statuses
    if before is not None:
        try:
            after = await sizes()
            out["burst_batch_sizes"] = after[len(before):] if len(after) > len(before) else after[-{BURST}:]
        except Exception as exc:
            out["batch_sizes_error"] = repr(exc)[:300]
"""

#: The capstone starter's problem (iris): a submission still serving it answers this request.
STARTER = {"app": "capstone-starter", "example": {"features": [5.1, 3.5, 1.4, 0.2]}}
#: Bodies every capstone app must refuse with a 4xx and a JSON error (course's fuzz kinds, bounded).
GENERIC_BAD = {
    "not JSON": "{not json",
    "a JSON array": "[]",
    "JSON null": "null",
    "an empty object": "{}",
    "a number": "42",
}
#: The grader's own load test: up to this many requests of the example, this many at a time, each
#: bounded, and no new one after LOAD_BUDGET_S seconds.
LOAD_REQUESTS, LOAD_CONCURRENCY, LOAD_TIMEOUT_S, LOAD_BUDGET_S = 48, 8, 20, 20
#: A load-test report claiming more than this multiple of the grader's measured throughput is not believed.
CLAIM_FACTOR = 4.0

LOADTEST_KEYS = ("requests", "errors", "error_rate", "throughput_rps", "p50_ms", "p95_ms", "p99_ms")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class Missing(Exception):
    """The submission does not give what a check needs (the reason says what)."""


def capstone(live) -> dict:
    cap = live.kernel.get("capstone")
    if not isinstance(cap, dict):
        why = live.kernel.get("probe_missing") or f"CAPSTONE is a {live.kernel.get('capstone_type', '?')}"
        raise Missing(f"no CAPSTONE dict in the notebook at the check point ({why})")
    return cap


def app_name(live) -> str:
    name = capstone(live).get("app")
    if not isinstance(name, str) or not _NAME.match(name) or name in {".", ".."}:
        raise Missing(f"CAPSTONE['app'] must be an app name (letters, digits, _ . -), not {name!r}")
    return name


def route(live) -> str:
    prefix = capstone(live).get("route")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise Missing(f"CAPSTONE['route'] must be a route prefix like '/sentiment', not {prefix!r}")
    return prefix


def _as_post(body) -> dict:
    """``Live.post`` keyword arguments for an example: a string is sent as it is, anything else as JSON."""
    return {"raw": body} if isinstance(body, str | bytes) else {"body": body}


def _send(live, body, **kwargs):
    return live.post(route(live), **_as_post(body), **kwargs)


def guarded(check):
    """A check whose inputs are missing fails with the reason instead of raising."""

    def run(live):
        try:
            return check(live)
        except Missing as exc:
            return False, str(exc)
        except OSError as exc:  # requests' connection errors are OSErrors
            return False, f"the app did not answer over HTTP: {type(exc).__name__}: {short(str(exc), 200)}"

    run.__name__, run.__doc__ = check.__name__, check.__doc__
    return run


@guarded
def check_app_running(live):
    name = app_name(live)
    status = live.app_status(name)
    if status is None:
        apps = sorted((live.kernel.get("serve_apps") or {}).keys())
        return False, f"serve.status() has no application {name!r} (applications: {apps or 'none'})"
    if status.get("status") != "RUNNING":
        return False, f"application {name!r} is {status.get('status')}, not RUNNING"
    answer = _send(live, capstone(live).get("example"))
    if answer.status_code == 404:
        return False, f"{name!r} is RUNNING but {live.url(route(live))} answers 404 (wrong route prefix?)"
    return True, f"{name!r} is RUNNING and {route(live)} answers (HTTP {answer.status_code})"


@guarded
def check_example_answered(live):
    example = capstone(live).get("example")
    if example is None:
        return False, "CAPSTONE['example'] is missing"
    answer = _send(live, example)
    if answer.status_code != 200:
        return False, f"the example got HTTP {answer.status_code}: {short(answer.text)}"
    try:
        body = answer.json()
    except ValueError:
        return False, f"the example got HTTP 200 but the body is not JSON: {short(answer.text)!r}"
    if not isinstance(body, dict) or "model_version" not in body:
        return False, f"HTTP 200, but the answer names no model_version: {short(answer.text)}"
    return True, f"HTTP 200 with JSON: {short(answer.text)}"


@guarded
def check_own_problem(live):
    cap = capstone(live)
    if app_name(live) == STARTER["app"]:
        why = "the capstone is a problem of your own"
        return False, f"the app is still the iris starter's {STARTER['app']!r}: {why}"
    own = _send(live, cap.get("example"))
    if own.status_code != 200:
        return False, f"the app's own example got HTTP {own.status_code}: nothing to tell it from the starter"
    answer = _send(live, STARTER["example"])
    if answer.status_code == 200:
        return (
            False,
            f"{route(live)} answers the starter's iris request {STARTER['example']} with HTTP 200 "
            f"({short(answer.text, 80)}): the starter's model is still served",
        )
    if cap.get("example") == STARTER["example"]:
        return False, "CAPSTONE['example'] is the starter's iris example"
    return True, f"not the starter: its iris request gets HTTP {answer.status_code}"


@guarded
def check_bad_input_4xx(live):
    cap = capstone(live)
    if "bad_example" not in cap:
        return False, "CAPSTONE['bad_example'] is missing"
    prefix = route(live)  # a route that is not one fails with the reason, before any request
    bodies = {"CAPSTONE['bad_example']": cap["bad_example"], **GENERIC_BAD}
    cases = {case: (_as_post(body), range(400, 500)) for case, body in bodies.items()}
    return live.bad_then_good(prefix, cases, _as_post(cap.get("example")), error_at=())


def batch_decorated(cells: list[str]) -> list[str]:
    """Names of the functions decorated with ``serve.batch`` (or ``batch``, ``serve.batch(...)``) in the
    submission's code cells, read from their syntax trees: a comment or a string does not count."""
    import ast

    found = []
    for cell in cells:
        try:
            tree = compile(cell, "cell", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError:  # IPython magics: not Python, no decorator either
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for deco in node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    name = ast.unparse(target)
                    if name in ("serve.batch", "batch", "ray.serve.batch"):
                        found.append(node.name)
    return found


@guarded
def check_batching(live):
    flag = capstone(live).get("batching")
    if flag is not True:
        return False, f"CAPSTONE['batching'] is {flag!r}, not True"
    batched = batch_decorated(live.code_cells or [live.source])
    if not batched:
        return False, "CAPSTONE['batching'] is True but no function is decorated with @serve.batch"
    statuses = live.kernel.get("burst_statuses")
    if not isinstance(statuses, list) or not statuses:
        return False, "no burst was sent (the app was not found at the check point)"
    if any(s != 200 for s in statuses):
        return False, f"a burst of {len(statuses)} concurrent examples got {sorted(map(str, statuses))}"
    sizes = live.kernel.get("burst_batch_sizes")
    if not isinstance(sizes, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in sizes):
        why = live.kernel.get("batch_sizes_error", "no batch sizes")
        return (
            False,
            f"the ingress's batch_sizes_seen() (the contract) gave no batch sizes: {short(str(why), 200)}",
        )
    if not sizes or max(sizes) <= 1:
        return (
            False,
            f"{len(statuses)} concurrent requests were served in batches of {sizes}: none larger than 1",
        )
    return True, f"@serve.batch on {', '.join(batched)}; a burst of {len(statuses)} ran in batches of {sizes}"


@guarded
def check_mlflow_champion_served(live):
    name = capstone(live).get("mlflow_model")
    if not isinstance(name, str) or not name.strip():
        return False, f"CAPSTONE['mlflow_model'] is {name!r}: no registered model named"
    uri = live.kernel.get("mlflow_registry_uri") or live.kernel.get("mlflow_tracking_uri")
    if not isinstance(uri, str):
        return False, "mlflow is not imported in the notebook's kernel: no registry to look in"
    uri = resolve_registry_uri(uri, live.workdir)
    found = registry_facts(uri, name)
    if isinstance(found, str):
        return False, f"could not read the registry at {uri}: {found}"
    if not found["versions"]:
        return False, f"model {name!r} has no registered version in {uri}"
    champion = found["champion"]
    if champion is None:
        return False, f"model {name!r} has {len(found['versions'])} version(s) but no alias 'champion'"
    answer = _send(live, capstone(live).get("example"))
    try:
        served = answer.json().get("model_version")
    except (ValueError, AttributeError):
        served = None
    if str(served) != str(champion):
        return False, f"the answer names model_version {served!r}; alias 'champion' is version {champion}"
    if "python_function" not in found["flavors"]:
        why = short(found["model_error"] or f"its flavors are {found['flavors']}", 200)
        return False, f"version {champion} of {name!r} is not an MLflow model that loads as pyfunc: {why}"
    flavors = ", ".join(found["flavors"])
    return True, f"{name!r}@champion is version {champion} ({flavors}), the version that answered"


def resolve_registry_uri(uri: str, workdir: Path) -> str:
    """A relative SQLite path (MLflow's default ``sqlite:///mlflow.db``) is relative to the kernel's
    working folder, which is not the grader's."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((workdir / uri[len("sqlite:///") :]).resolve())
    return uri


_LOOKUP = """
import json, sys
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
uri, name = sys.argv[1], sys.argv[2]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
escaped = name.replace("'", "''")
found = client.search_model_versions(f"name = '{escaped}'")
versions = sorted({v.version for v in found if v.name == name}, key=str)
try:
    champion = client.get_model_version_by_alias(name, "champion").version if versions else None
except MlflowException:
    champion = None
flavors, model_error = [], None
if champion is not None:  # its MLmodel file only: no weights are loaded
    import mlflow
    from mlflow.models import get_model_info
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        flavors = sorted(get_model_info(f"models:/{name}/{champion}").flavors)
    except Exception as exc:
        model_error = f"{type(exc).__name__}: {exc}"
facts = {"versions": versions, "champion": champion, "flavors": flavors, "model_error": model_error}
print(json.dumps(facts))
"""


def registry_facts(uri: str, name: str) -> dict | str:
    """``{"versions": [...], "champion": version or None, "flavors": [...], "model_error": str or None}``
    of ``name`` in the registry at ``uri`` (the flavors of the champion's MLmodel file, or why it could
    not be read), looked up in a child process (MLflow's import and its HTTP retries stay out of the
    grader), or the error as a string."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite://") :]).is_file():
        # no registry file yet: nothing was registered
        return {"versions": [], "champion": None, "flavors": [], "model_error": None}
    if not re.match(r"^(sqlite:///|file:|https?://(127\.0\.0\.1|localhost)[:/])", uri):
        return "only a local registry (sqlite, file, http://127.0.0.1) is graded"
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
    import os

    try:
        done = subprocess.run(
            [sys.executable, "-c", _LOOKUP, uri, name],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, **env},
        )
    except subprocess.TimeoutExpired:
        return "the lookup took more than 90 s"
    if done.returncode != 0:
        return short(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed", 300)
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    champion = facts.get("champion")
    return {
        "versions": [str(v) for v in facts.get("versions", [])],
        "champion": None if champion is None else str(champion),
        "flavors": [str(f) for f in facts.get("flavors") or []],
        "model_error": facts.get("model_error"),
    }


def loadtest(live) -> dict:
    path = live.scratch / "capstone" / app_name(live) / "loadtest.json"
    if not path.is_file():
        raise Missing(f"no load-test report at scratch/capstone/{app_name(live)}/loadtest.json")
    if path.stat().st_size > 1_000_000:
        raise Missing("the load-test report is over 1 MB")
    try:
        report = json.loads(path.read_text())
    except ValueError as exc:
        raise Missing(f"the load-test report is not JSON: {exc}") from None
    if not isinstance(report, dict):
        raise Missing("the load-test report is not a JSON object")
    missing = [k for k in LOADTEST_KEYS if k not in report]
    if missing:
        raise Missing(f"the load-test report lacks {', '.join(missing)}")
    bad = [k for k in LOADTEST_KEYS if not _number(report[k])]
    if bad:
        raise Missing(f"not numbers in the load-test report: {', '.join(f'{k}={report[k]!r}' for k in bad)}")
    return report


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def measured_load(live) -> dict:
    """The grader's own load test of the example (once per submission), from the grader's process over
    127.0.0.1: LOAD_CONCURRENCY clients send it one after another until LOAD_REQUESTS have been sent
    or LOAD_BUDGET_S has passed (a slow model is measured on fewer requests, not for longer). An
    answer of HTTP 400 or more, or no answer within LOAD_TIMEOUT_S, is an error."""
    cached = live.__dict__.get("_measured_load")
    if cached is not None:
        return cached
    from servekit.load import run_load

    route(live)  # a missing route fails the check with the reason, before any request
    example, raised = capstone(live).get("example"), []

    def send(i: int):
        try:
            return _send(live, example, timeout=LOAD_TIMEOUT_S)
        except OSError as exc:  # counted by run_load by its class; the first message is kept
            raised.append(f"{type(exc).__name__}: {short(str(exc), 120)}")
            raise

    run = run_load(send, LOAD_REQUESTS, LOAD_CONCURRENCY, progress=False, budget_s=LOAD_BUDGET_S)
    failed = {o: n for o, n in run.outcomes.items() if o != "ok" and (isinstance(o, str) or o >= 400)}
    counts = ", ".join(f"{'HTTP ' * isinstance(o, int)}{o} x{n}" for o, n in failed.items())
    cached = live.__dict__["_measured_load"] = {
        "failures": (counts + (f" (first: {raised[0]})" if raised else "")) or None,
        "requests": run.total,
        "errors": run.errors,
        "error_rate": run.errors / max(run.total, 1),
        "throughput_rps": (run.total - run.errors) / run.duration_s if run.duration_s > 0 else 0.0,
        "p95_ms": run.p95_ms,
    }
    return cached


@guarded
def check_load_error_rate_below_1pct(live):
    got = measured_load(live)
    figures = (
        f"{got['errors']} errors of {got['requests']} at {LOAD_CONCURRENCY} concurrent, "
        f"{got['throughput_rps']:.1f} req/s, p95 {got['p95_ms']:.0f} ms"
    )
    if got["error_rate"] >= 0.01:
        return False, f"the grader's load test: {figures} ({got['failures']})"
    return True, f"the grader's load test: {figures}"


@guarded
def check_loadtest_report(live):
    report = loadtest(live)
    if report["requests"] <= 0:
        return False, f"the load test sent {report['requests']} requests"
    if not 0 <= report["error_rate"] <= 1 or report["errors"] > report["requests"]:
        return (
            False,
            f"error_rate {report['error_rate']} with {report['errors']} errors of {report['requests']}",
        )
    got = measured_load(live)
    if got["errors"] == got["requests"]:
        return (
            False,
            f"the app answered none of the grader's {got['requests']} requests: {got['failures']}",
        )
    if report["error_rate"] < 0.01 <= got["error_rate"]:
        return False, (
            f"the report says error_rate {report['error_rate']}, the grader measured {got['error_rate']:.3f}"
        )
    if report["throughput_rps"] > CLAIM_FACTOR * max(got["throughput_rps"], 0.1):
        return False, (
            f"the report claims {report['throughput_rps']} req/s; the grader measured "
            f"{got['throughput_rps']:.1f} req/s (more than {CLAIM_FACTOR:g}x is not believed)"
        )
    figures = ", ".join(f"{k} {report[k]}" for k in LOADTEST_KEYS)
    return True, f"scratch/capstone/{app_name(live)}/loadtest.json agrees with the grader's run: {figures}"
