"""The cell the grader injects at the check point, and the JSON it prints (untrusted input)."""

from __future__ import annotations

import json
from types import ModuleType

MAX_PROBE_CHARS = 1_000_000


#: Injected at the check point, in the submission's kernel. It defines only names starting with
#: ``__grader`` and prints one line: the nonce, then JSON. Each checks module adds ``PROBE``: the body
#: of ``async def __grader_extra(out)`` that fills ``out`` with what its checks need.
_PROBE_TEMPLATE = """
async def __grader_probe():
    import json as __grader_json, sys as __grader_sys
    out = {{}}
    try:  # the port servekit.start_serve chose; None when the notebook did not import servekit
        __grader_kit = __grader_sys.modules.get("servekit")
        out["port"] = __grader_kit.serve_port() if __grader_kit is not None else None
    except Exception as exc:
        out["port_error"] = repr(exc)
    try:
        import ray
        out["ray_initialized"] = ray.is_initialized()
        if ray.is_initialized():
            from ray import serve
            routes = {{}}
            try:  # serve.status() has no route prefixes; the controller's details do
                from ray.serve.context import _get_global_client
                details = _get_global_client(raise_if_no_controller_running=False).get_serve_details()
                found = details.get("applications") or {{}}
                routes = {{n: a.get("route_prefix") for n, a in found.items()}}
            except Exception as exc:
                out["routes_error"] = repr(exc)
            apps = {{}}
            for name, app in serve.status().applications.items():
                apps[name] = {{
                    "status": str(getattr(app.status, "value", app.status)),
                    "route_prefix": routes.get(name),
                    "deployments": {{
                        d: {{"status": str(getattr(s.status, "value", s.status)),
                            "replica_states": {{str(k): v for k, v in s.replica_states.items()}}}}
                        for d, s in app.deployments.items()
                    }},
                }}
            out["serve_apps"] = apps
            try:  # the proxy's port as Serve's controller has it (a notebook may skip servekit.start_serve)
                from ray.serve.context import _get_global_client
                client = _get_global_client(raise_if_no_controller_running=False)
                out["serve_port"] = client.http_config.port if client else None
            except Exception as exc:
                out["serve_port_error"] = repr(exc)
    except Exception as exc:
        out["serve_error"] = repr(exc)
    if "mlflow" in __grader_sys.modules:
        try:
            out["mlflow_tracking_uri"] = __grader_sys.modules["mlflow"].get_tracking_uri()
            out["mlflow_registry_uri"] = __grader_sys.modules["mlflow"].get_registry_uri()
        except Exception as exc:
            out["mlflow_error"] = repr(exc)
    try:
        await __grader_extra(out)
    except Exception as exc:
        out["extra_error"] = repr(exc)
    return __grader_json.dumps(out, default=repr)

async def __grader_extra(out):
{extra}

print({nonce!r} + await __grader_probe())
"""


def probe_code(checks: ModuleType, nonce: str) -> str:
    extra = getattr(checks, "PROBE", "pass").strip("\n") or "pass"
    extra = "\n".join(("    " + line) if line.strip() else "" for line in extra.splitlines())
    return _PROBE_TEMPLATE.format(extra=extra, nonce=nonce)


def probe_text(printed: str, nonce: str) -> str | None:
    """What the injected cell printed after ``nonce`` (at most ``MAX_PROBE_CHARS``), wherever the nonce
    is: a thread of the submission may print a status line without a newline just before it, or more
    text right after the JSON. None if the nonce is not there."""
    at = printed.find(nonce)
    if at < 0:
        return None
    start = at + len(nonce)
    return printed[start : start + MAX_PROBE_CHARS]


def probe_output(outputs: list[dict], nonce: str) -> str | None:
    """:func:`probe_text` of the injected cell's stream outputs. Long output may arrive in several
    messages: each stream's are joined on their own (a thread's stderr between two stdout messages must
    not split the JSON), stdout first, where the cell prints."""
    printed: dict[str, str] = {"stdout": ""}
    for out in outputs:
        if out.get("output_type") == "stream":
            name = str(out.get("name", ""))
            printed[name] = printed.get(name, "") + str(out.get("text", ""))
    for text in printed.values():
        if (found := probe_text(text, nonce)) is not None:
            return found
    return None


def parse_probe(text: str | None, state: dict) -> dict:
    """The JSON object at the start of ``text`` (from :func:`probe_text`; what follows it is ignored)."""
    if not text:
        return {"probe_missing": state.get("probe_error", "the injected cell printed nothing")}
    try:
        data, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return {"probe_missing": "the injected cell's output was not JSON"}
    return (
        data if isinstance(data, dict) else {"probe_missing": "the injected cell's output was not an object"}
    )
