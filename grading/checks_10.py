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

#: Runs in the submission's kernel (body of ``async def __grader_extra(out)``).
PROBE = """
cap = globals().get("CAPSTONE")
out["capstone"] = cap if isinstance(cap, dict) else None
out["capstone_type"] = type(cap).__name__
"""

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


def _send(live, body):
    if isinstance(body, str | bytes):
        return live.post(route(live), raw=body)
    return live.post(route(live), body)


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n] + "..."


def guarded(check):
    """A check whose inputs are missing fails with the reason instead of raising."""

    def run(live):
        try:
            return check(live)
        except Missing as exc:
            return False, str(exc)
        except OSError as exc:  # requests' connection errors are OSErrors
            return False, f"the app did not answer over HTTP: {type(exc).__name__}: {_short(str(exc), 200)}"

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
        return False, f"the example got HTTP {answer.status_code}: {_short(answer.text)}"
    try:
        answer.json()
    except ValueError:
        return False, f"the example got HTTP 200 but the body is not JSON: {_short(answer.text)!r}"
    return True, f"HTTP 200 with JSON: {_short(answer.text)}"


@guarded
def check_bad_input_4xx(live):
    cap = capstone(live)
    if "bad_example" not in cap:
        return False, "CAPSTONE['bad_example'] is missing"
    answer = _send(live, cap["bad_example"])
    if answer.status_code == 404:
        return False, f"the bad example got HTTP 404: nothing is served at {live.url(route(live))}"
    if not 400 <= answer.status_code < 500:
        return False, f"the bad example got HTTP {answer.status_code}, not a 4xx: {_short(answer.text)}"
    try:
        message = answer.json()
    except ValueError:
        return False, f"HTTP {answer.status_code}, but the error is not JSON: {_short(answer.text)!r}"
    if not message:
        return False, f"HTTP {answer.status_code} with an empty error body"
    after = _send(live, cap.get("example"))
    if after.status_code != 200:
        return False, f"after the bad example, the example got HTTP {after.status_code}"
    return True, f"HTTP {answer.status_code} {_short(json.dumps(message))}; the app kept serving"


@guarded
def check_batching(live):
    flag = capstone(live).get("batching")
    uses = re.search(r"@\s*serve\s*\.\s*batch\b", live.source) is not None
    if flag is not True:
        return False, f"CAPSTONE['batching'] is {flag!r}, not True"
    if not uses:
        return False, "CAPSTONE['batching'] is True but no deployment uses @serve.batch"
    return True, "CAPSTONE['batching'] is True and the code uses @serve.batch"


@guarded
def check_mlflow_registered(live):
    name = capstone(live).get("mlflow_model")
    if not isinstance(name, str) or not name.strip():
        return False, f"CAPSTONE['mlflow_model'] is {name!r}: no registered model named"
    uri = live.kernel.get("mlflow_registry_uri") or live.kernel.get("mlflow_tracking_uri")
    if not isinstance(uri, str):
        return False, "mlflow is not imported in the notebook's kernel: no registry to look in"
    uri = resolve_registry_uri(uri, live.workdir)
    found = registered_versions(uri, name)
    if isinstance(found, str):
        return False, f"could not read the registry at {uri}: {found}"
    if not found:
        return False, f"model {name!r} has no registered version in {uri}"
    return True, f"model {name!r} has {len(found)} version(s) in the registry ({', '.join(found[:5])})"


def resolve_registry_uri(uri: str, workdir: Path) -> str:
    """A relative SQLite path (MLflow's default ``sqlite:///mlflow.db``) is relative to the kernel's
    working folder, which is not the grader's."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((workdir / uri[len("sqlite:///") :]).resolve())
    return uri


_LOOKUP = """
import json, sys
from mlflow import MlflowClient
uri, name = sys.argv[1], sys.argv[2]
escaped = name.replace("'", "''")
versions = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(f"name = '{escaped}'")
print(json.dumps(sorted({v.version for v in versions if v.name == name}, key=str)))
"""


def registered_versions(uri: str, name: str) -> list[str] | str:
    """The versions of ``name`` in the registry at ``uri``, looked up in a child process (MLflow's
    import and its HTTP retries stay out of the grader), or the error as a string."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite://") :]).is_file():
        return []  # no registry file yet: nothing was registered
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
        return _short(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed", 300)
    return [str(v) for v in json.loads(done.stdout.strip().splitlines()[-1])]


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


@guarded
def check_loadtest_report(live):
    report = loadtest(live)
    if report["requests"] <= 0:
        return False, f"the load test sent {report['requests']} requests"
    figures = ", ".join(f"{k} {report[k]}" for k in LOADTEST_KEYS)
    return True, f"scratch/capstone/{app_name(live)}/loadtest.json: {figures}"


@guarded
def check_loadtest_error_rate_below_1pct(live):
    report = loadtest(live)
    rate = report["error_rate"]
    if not 0 <= rate < 0.01:
        return (
            False,
            f"error_rate {rate} ({report['errors']} errors of {report['requests']}) is not below 0.01",
        )
    return True, f"error_rate {rate} ({report['errors']} errors of {report['requests']})"
