"""An assignment's rubric and hidden checks (``grading/``), and :class:`Live`: what the checks get."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from servekit.paths import REPO_ROOT

GRADING_DIR = REPO_ROOT / "grading"
CLEANUP_CHECK = "cleanup_leaves_nothing"


def assignment_id(value: str) -> str:
    """``"1"``, ``"01"`` -> ``"01"``; ``"10"`` -> ``"10"``."""
    if not value.isdigit():
        raise ValueError(f"an assignment is a lesson number like 01 or 10, not {value!r}")
    return f"{int(value):02d}"


def available_assignments(grading_dir: Path = GRADING_DIR) -> list[str]:
    return sorted(
        p.stem.split("_")[1]
        for p in grading_dir.glob("checks_[0-9][0-9].py")
        if (grading_dir / f"rubric_{p.stem.split('_')[1]}.json").exists()
    )


def load_rubric(assignment: str, grading_dir: Path = GRADING_DIR) -> dict:
    rubric = json.loads((grading_dir / f"rubric_{assignment}.json").read_text())
    ids = [c["id"] for c in rubric["checks"]]
    if len(set(ids)) != len(ids) or sum(c["points"] for c in rubric["checks"]) != rubric["total"]:
        raise ValueError(
            f"rubric_{assignment}.json: check ids must be unique and points must add up to total"
        )
    return rubric


def load_checks(assignment: str, grading_dir: Path = GRADING_DIR) -> ModuleType:
    """The hidden checks, loaded from their file (grading/ is not a package learners import)."""
    path = grading_dir / f"checks_{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"_servekit_hidden_checks_{assignment}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def short(text: str, n: int = 120) -> str:
    """``text`` cut to ``n`` characters for a check's reason."""
    return text if len(text) <= n else text[:n] + "..."


@dataclass
class Live:
    """What the hidden checks get at the check point. ``kernel`` is the injected cell's JSON:
    untrusted (the submission's code ran in that kernel), so checks validate what they read."""

    kernel: dict[str, Any]
    workdir: Path
    source: str  # the submission's code cells, joined
    code_cells: list[str] = field(default_factory=list)  # the same cells, one by one
    leftovers: list[str] = field(default_factory=list)  # processes still running after the cleanup

    @property
    def scratch(self) -> Path:
        return self.workdir / "scratch"

    @property
    def port(self) -> int | None:
        """Serve's HTTP port: from Serve's controller, else from servekit.start_serve; None when the
        kernel knows none (then no request goes out: port 8000 may be someone else's Serve)."""
        for port in (self.kernel.get("serve_port"), self.kernel.get("port")):
            if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                return port
        return None

    def url(self, route: str) -> str:
        if self.port is None:
            raise ConnectionError("Serve is not running in the notebook's kernel (no HTTP port)")
        route = route if isinstance(route, str) else "/"
        return f"http://127.0.0.1:{self.port}/{route.lstrip('/')}"

    def post(self, route: str, body: Any = None, raw: str | bytes | None = None, **kwargs):
        """POST ``body`` as JSON (or ``raw`` bytes as application/json) to the app, from this process."""
        import requests

        kwargs.setdefault("timeout", 30)
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
            headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
            return requests.post(self.url(route), data=data, headers=headers, **kwargs)
        return requests.post(self.url(route), json=body, **kwargs)

    def app_status(self, name: str) -> dict | None:
        apps = self.kernel.get("serve_apps")
        app = apps.get(name) if isinstance(apps, dict) else None
        return app if isinstance(app, dict) else None

    def bad_then_good(
        self,
        route: str,
        cases: dict[str, tuple[dict[str, Any], int | range]],
        good: dict[str, Any],
        error_at: tuple[str, ...] = ("error",),
        timeout: float = 30,
    ) -> tuple[bool, str]:
        """A check's verdict on bad input: each case (``post`` keyword arguments, wanted status, or a
        range of them) must get that status with an error message at ``error_at`` in its JSON body
        (:func:`error_message`), then a good request (``good``: ``post`` keyword arguments too) must
        still get a 200."""
        got = {}
        for case, (kwargs, want) in cases.items():
            answer = self.post(route, timeout=timeout, **kwargs)
            got[case] = answer.status_code
            seen = f"{case}: HTTP {answer.status_code} {short(answer.text)}"
            if answer.status_code not in (want if isinstance(want, range) else (want,)):
                return False, f"{seen}, expected {_status(want)}"
            if not error_message(answer, *error_at):
                where = "".join(f"[{key!r}]" for key in error_at) or "a JSON body"
                return False, f"{seen}, but no error at {where}"
        after = self.post(route, timeout=timeout, **good)
        if after.status_code != 200:
            return False, f"after the bad requests a good one got HTTP {after.status_code}"
        return True, f"statuses {got}; the app kept serving"


def _status(want: int | range) -> str:
    if isinstance(want, range):
        return f"a {str(want.start)[0]}xx" if want == range(want.start, want.start + 100) else str(want)
    return str(want)


def error_message(answer: Any, *path: str) -> str:
    """The error message in an answer's JSON body, "" when there is none: ``error_message(a, "error")``
    reads ``{"error": "..."}``, ``error_message(a, "error", "message")`` an OpenAI-style error; with no
    path, any non-empty JSON body counts, as its text."""
    try:
        value = answer.json()
    except ValueError:
        return ""
    if not path:
        return json.dumps(value) if value else ""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""
