"""servekit: the Ray Serve course's plumbing, kept out of the lessons.

Nothing here teaches Serve: the lessons write their deployments, ``serve.run`` calls,
handles and configs out in full. The kit resolves offline models, starts and stops a
quiet, isolated local Ray cluster the same way in every notebook, waits for an app to
be healthy, generates load, accounts for CPU by process role, runs an app in another Serve
mode (a fresh process with its own cluster), cleans up processes by PID, and runs lesson 02's
summarizer and translator engines.
"""

from servekit.backends import EngineFailed, load_summarizer, load_translator, split_sentences
from servekit.body import BadBody, json_body
from servekit.cluster import (
    free_port,
    quiet_ray_logging,
    ray_temp_dir,
    serve_port,
    serve_url,
    shutdown,
    start_ray,
    start_serve,
    use_session_token,
)
from servekit.cpu import ROLES, CpuUse, cpu_by_role
from servekit.health import AppNotHealthy, deploys_within, wait_until_healthy
from servekit.in_flight import InFlight
from servekit.load import LoadReport, aiohttp_json_sender, http_json_sender, run_load, run_load_async
from servekit.mlflow_server import MlflowServer, start_mlflow_server
from servekit.models import ModelUnavailable, ResolvedModel, resolve_model
from servekit.modes import MODES, compare_modes, run_in_mode
from servekit.paths import REPO_ROOT, SCRATCH
from servekit.probe import error_text, probe
from servekit.ray_cluster import LocalCluster, start_cluster
from servekit.retry import RetryingSender, with_retries
from servekit.rollout import deploy_config, replica_ids, wait_for_async
from servekit.source import show_source
from servekit.uvicorn_server import UvicornFailed, serve_with_uvicorn
from servekit.wait import WaitTimeout, wait_for

# isort: split
# lesson 09: which sockets a cluster listens on; Prometheus metrics read back (more in servekit.prom)
from servekit.prom import bucket_delta, histogram_quantile, scrape
from servekit.sockets import ListeningSocket, exposed, listening_sockets

# isort: split
# lesson 01: try a model in a process that exits afterwards, so the kernel keeps no torch
from servekit.child import ChildFailed, in_child

# the capstone: its contract with the grader, and the data sets the reference solutions read
from servekit.contract import check_capstone, embedded_registry, loadtest_path, write_loadtest
from servekit.movielens import load_movielens
from servekit.tweets import load_corpus, split_of

__all__ = [
    "InFlight",
    "deploys_within",
    "BadBody",
    "json_body",
    "MODES",
    "ROLES",
    "CpuUse",
    "compare_modes",
    "cpu_by_role",
    "run_in_mode",
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
    "quiet_ray_logging",
    "ray_temp_dir",
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
    "serve_port",
    "serve_url",
    "serve_with_uvicorn",
    "UvicornFailed",
    "show_source",
    "shutdown",
    "start_mlflow_server",
    "start_ray",
    "start_serve",
    "use_session_token",
    "wait_until_healthy",
    # lesson 08
    "deploy_config",
    "replica_ids",
    "wait_for_async",
    # lesson 09
    "ListeningSocket",
    "bucket_delta",
    "exposed",
    "histogram_quantile",
    "listening_sockets",
    "scrape",
    "LocalCluster",
    "RetryingSender",
    "start_cluster",
    "with_retries",
    # lesson 01
    "ChildFailed",
    "in_child",
    # the capstone
    "check_capstone",
    "embedded_registry",
    "load_corpus",
    "load_movielens",
    "loadtest_path",
    "split_of",
    "write_loadtest",
]
