"""servekit: the Ray Serve course's plumbing, kept out of the lessons.

Nothing here teaches Serve: the lessons write their deployments, ``serve.run`` calls,
handles and configs out in full. The kit resolves offline models, starts and stops a
quiet, isolated local Ray cluster the same way in every notebook, waits for an app to
be healthy, generates load and cleans up processes by PID, and runs lesson 02's
summarizer and translator engines.
"""

from servekit.backends import EngineFailed, load_summarizer, load_translator, split_sentences
from servekit.cluster import free_port, serve_url, shutdown, start_ray, start_serve
from servekit.health import AppNotHealthy, wait_until_healthy
from servekit.load import LoadReport, aiohttp_json_sender, http_json_sender, run_load, run_load_async
from servekit.mlflow_server import MlflowServer, start_mlflow_server
from servekit.models import ModelUnavailable, ResolvedModel, resolve_model
from servekit.paths import REPO_ROOT, SCRATCH
from servekit.probe import error_text, probe
from servekit.wait import WaitTimeout, wait_for

__all__ = [
    "AppNotHealthy",
    "EngineFailed",
    "ModelUnavailable",
    "load_summarizer",
    "load_translator",
    "split_sentences",
    "WaitTimeout",
    "aiohttp_json_sender",
    "error_text",
    "probe",
    "wait_for",
    "LoadReport",
    "MlflowServer",
    "REPO_ROOT",
    "ResolvedModel",
    "SCRATCH",
    "free_port",
    "http_json_sender",
    "resolve_model",
    "run_load",
    "run_load_async",
    "serve_url",
    "shutdown",
    "start_mlflow_server",
    "start_ray",
    "start_serve",
    "wait_until_healthy",
]
