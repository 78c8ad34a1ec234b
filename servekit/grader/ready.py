"""Before the hidden checks: wait, bounded, until the submission's apps answer over HTTP.

The checks judge what an app answers, so a grade must not depend on how busy the machine is at the
check point. The grader first waits until Serve's proxy routes every application the kernel reported
RUNNING (``GET /-/routes``) and a request to each route gets any answer but a gateway error (502, 503,
504) or a refused connection; then the checks run, whether or not that happened in time, and the
report says how long the wait took or why it ended.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from servekit.grader.rubric import Live

GATEWAY_ERRORS = {502, 503, 504}


def running_routes(live: Live) -> list[str]:
    """Route prefixes of the applications the kernel reported RUNNING (untrusted: validated)."""
    apps = live.kernel.get("serve_apps")
    if not isinstance(apps, dict):
        return []
    return sorted(
        app["route_prefix"]
        for app in apps.values()
        if isinstance(app, dict)
        and app.get("status") == "RUNNING"
        and isinstance(app.get("route_prefix"), str)
        and app["route_prefix"].startswith("/")
    )


def _not_answering(live: Live, routes: list[str], timeout_s: float) -> list[str]:
    """What keeps each route from counting as up, one phrase a route; empty when all answer."""
    try:
        table = requests.get(live.url("/-/routes"), timeout=timeout_s).json()
    except (requests.RequestException, ValueError) as exc:
        return [f"Serve's proxy did not answer ({type(exc).__name__})"]
    pending = []
    for route in routes:
        if not isinstance(table, dict) or route not in table:
            pending.append(f"{route} is not in the proxy's routes yet")
            continue
        try:
            status = requests.get(live.url(route), timeout=timeout_s).status_code
        except requests.RequestException as exc:
            pending.append(f"{route}: {type(exc).__name__}")
            continue
        if status in GATEWAY_ERRORS:
            pending.append(f"{route}: HTTP {status}")
    return pending


def wait_until_serving(live: Live, timeout_s: float, poll_s: float = 0.5) -> dict[str, Any]:
    """Poll until every RUNNING app's route answers (see the module's docstring) or ``timeout_s`` has
    passed. Returns ``{"ready": bool, "waited_s": float}``, with ``"why"`` when not ready."""
    t0 = time.monotonic()
    routes = running_routes(live)
    if live.port is None or not routes:
        return {"ready": False, "waited_s": 0.0, "why": "the kernel reported no running app with a route"}
    while True:
        left = timeout_s - (time.monotonic() - t0)
        pending = _not_answering(live, routes, max(1.0, min(10.0, left)))
        waited = round(time.monotonic() - t0, 1)
        if not pending:
            return {"ready": True, "waited_s": waited}
        if time.monotonic() - t0 + poll_s >= timeout_s:
            return {"ready": False, "waited_s": waited, "why": "; ".join(pending)[:500]}
        time.sleep(poll_s)
