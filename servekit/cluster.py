"""Start and stop the course's local Ray cluster and Serve, the same quiet way in every notebook.

Lesson 00 writes every one of these calls out and explains it; later lessons call
``start_ray()`` / ``start_serve()`` so that their cells show only what they teach.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from servekit.paths import SCRATCH
from servekit.ray_patches import (
    env_for_new_processes,
    single_machine_mode,
    without_idle_helpers,
)

#: Where Ray's session folder goes when scratch/ray is too long a path for Ray's Unix sockets.
FALLBACK_PARENT = Path("/tmp")
FALLBACK_PREFIX = "servekit-ray-"

_LONGEST_RAY_SOCKET_SUFFIX = 75  # "session_<date>_<time>_<us>_<pid>/sockets/plasma_store" plus margin
_state: dict[str, object] = {}
# serve.shutdown() waits on ServeController.graceful_shutdown, which never returns: the controller
# ray.kill()s itself. The controller is created with max_task_retries=-1, so the driver's task manager
# pushes "(raylet) Task ServeController.graceful_shutdown failed. There are infinite retries remaining,
# so the task will be retried" into the notebook before that call finally fails as expected. This turns
# off only such "will be retried" notices; a task that finally fails still raises.
_QUIET_RETRY_NOTICES = {"enable_output_error_log_if_still_retry": False}


def free_port(preferred: int = 8000, host: str = "127.0.0.1") -> int:
    """``preferred`` if nothing listens there, else a free port the OS picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Bind as servers do (uvicorn sets SO_REUSEADDR): a port whose last connections
            # are in TIME_WAIT is free for them, and must count as free here too.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free TCP port found")  # pragma: no cover - the OS always has one


@contextlib.contextmanager
def machine_lock(name: str, timeout_s: float = 120, poll_s: float = 0.05) -> Iterator[bool]:
    """Hold a lock shared by every process on this machine while the block runs; yields whether it got
    it. The lock is an abstract Unix socket named ``name``: no file is left anywhere, and the kernel
    frees it when the holder exits, even by SIGKILL. After ``timeout_s`` the block runs without it
    (a lesson must not hang on a stuck neighbour)."""
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout_s
    held = False
    try:
        while not held:
            try:
                lock.bind("\0" + name)
                held = True
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(poll_s)
        yield held
    finally:
        lock.close()


def fallback_prefix(scratch: Path) -> str:
    """The start of the names of the ``/tmp`` session folders that stand in for ``scratch``/ray: the
    kit's prefix and a tag of that scratch folder, so that a grader (or a test run) can tell its own
    submission's folders from other runs' on the same machine."""
    tag = hashlib.sha256(str(Path(scratch).resolve()).encode()).hexdigest()[:8]
    return f"{FALLBACK_PREFIX}{tag}-"


def ray_temp_dir() -> Path:
    """Ray's session files go under scratch/ray, unless that path is too long for a Unix socket:
    then under a ``/tmp/servekit-ray-<tag>-*`` folder of this process's own (one per process; the tag
    names the scratch folder, see :func:`fallback_prefix`), which
    is removed when the process exits, by ``shutdown()``, or by ``python -m servekit.cleanup``."""
    path = SCRATCH / "ray"
    if len(str(path)) + _LONGEST_RAY_SOCKET_SUFFIX <= 107:
        path.mkdir(parents=True, exist_ok=True)
        return path
    owned = _state.get("owned_temp_dir")
    if isinstance(owned, Path) and owned.is_dir():
        return owned
    from servekit.cleanup import record_cluster  # imported here: `python -m servekit.cleanup` runs it

    tmp = Path(tempfile.mkdtemp(prefix=fallback_prefix(SCRATCH), dir=FALLBACK_PARENT))
    _state["owned_temp_dir"] = tmp
    record_cluster(tmp)  # marks the folder as the kit's and as in use by this process
    _forget_at_exit()
    return tmp


def _forget_at_exit() -> None:
    """Remove this process's registry file and temp folder when it exits. Registered before
    ``ray.init``, so that it runs after Ray's own exit handler has stopped the cluster."""
    if _state.get("forget_registered") != os.getpid():
        _state["forget_registered"] = os.getpid()
        atexit.register(_forget, os.getpid())


def _forget(pid: int) -> None:
    if os.getpid() != pid:  # a forked child inherited the handler: the folder is not its to remove
        return
    registry = _state.pop("registry", None)
    if isinstance(registry, Path):
        registry.unlink(missing_ok=True)
    tmp = _state.pop("owned_temp_dir", None)
    if isinstance(tmp, Path):
        shutil.rmtree(tmp, ignore_errors=True)


#: glibc's malloc gives each thread that allocates its own arena, up to 8 per core, and keeps
#: freed memory in each. A Serve replica's threads (Ray's core worker, gRPC, the user-code loop,
#: torch) leave about 30 MB per torch replica there; 2 is what Python web servers usually set.
#: glibc reads the variable once, when a process starts: it must be there before Ray's processes are.
MALLOC_ARENAS = ("MALLOC_ARENA_MAX", "2")


_NO_PRESTART = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}


def quiet_ray_logging() -> None:
    """Keep Ray's and Serve's INFO lines (timestamps, pids) out of cell outputs."""
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)


def use_session_token() -> None:
    """Give Ray's token authentication a token held in this process's environment.

    Ray >= 2.59 turns token auth on for a new local cluster and, when it finds no token,
    writes one to ~/.ray/auth_token. A token in RAY_AUTH_TOKEN keeps authentication on and
    leaves no file behind; every Ray process this kernel starts inherits the variable.
    A token (or RAY_AUTH_MODE) you set yourself is respected.
    """
    if not {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)


def start_ray(
    num_cpus: int = 2,
    num_gpus: int | None = None,
    resources: dict[str, float] | None = None,
    dashboard: bool = False,
    object_store_mb: int = 200,
    prestart_workers: bool = False,
    loopback_only: bool = True,
    lean: bool = True,
):
    """An isolated, quiet local Ray cluster sized for a laptop; returns ``ray.init``'s context.

    ``address="local"`` never joins a cluster you started with ``ray start``; logical
    ``num_cpus``/``num_gpus`` make replicas schedule the same on any machine; the
    dashboard, when on, listens on 127.0.0.1 only; worker logs stay in the session's
    log files instead of landing in whichever cell is running.

    Ray normally starts idle workers (one per CPU, about 100 MB each) as soon as the notebook
    connects, so that a first task or actor starts without waiting for a Python process. The
    course keeps them off by default (``prestart_workers=False``). Measured on lessons 01-05
    it changes no peak: their first replicas take the idle workers over. But a replica with a
    ``runtime_env`` of its own (lesson 07's ``env_vars``) cannot use them, and they then sit
    idle all along (about 0.2 GiB); lessons 04 and 05 run one Ray task each, which waits
    about a second more for its worker. ``prestart_workers=True`` gives Ray's default back.

    ``loopback_only=True`` (the default) starts the cluster in Ray's single-machine mode, the one
    it uses on macOS and Windows: GCS, raylet, agents, workers and metrics then listen on
    127.0.0.1 only, where Ray on Linux would bind all interfaces or the machine's address even
    with ``_node_ip_address="127.0.0.1"``. One kind of socket stays on all interfaces: each Serve
    replica's gRPC server for calls between deployments (``[::]:0`` in Serve's code), which token
    authentication guards. Such a cluster cannot take a second node (``ray start --address``
    refuses): multi-node clusters are :mod:`servekit.ray_cluster`'s. ``False`` gives Ray's default.

    ``lean=True`` (the default) leaves out three head processes that a fixed-size cluster with its
    logs in files does not use: the autoscaler monitor, the log monitor and, without the dashboard,
    the API server; together about 0.2 GiB of the 2 GiB a free Binder gives. It also starts every
    Ray process with ``MALLOC_ARENA_MAX=2`` (see ``MALLOC_ARENAS``; about 30 MB less per model
    replica). ``ray status`` reads what the monitor reports: lesson 03, which sends a learner
    there, passes ``lean=False``.
    """
    import ray

    from servekit.cleanup import record_cluster

    quiet_ray_logging()
    if ray.is_initialized():
        return ray.get_runtime_context()
    use_session_token()
    temp_dir = ray_temp_dir()
    _forget_at_exit()
    system_config = _QUIET_RETRY_NOTICES if prestart_workers else {**_QUIET_RETRY_NOTICES, **_NO_PRESTART}
    with (
        single_machine_mode() if loopback_only else contextlib.nullcontext(),
        without_idle_helpers(api_server=dashboard) if lean else contextlib.nullcontext(),
        env_for_new_processes(*MALLOC_ARENAS) if lean else contextlib.nullcontext(),
    ):
        ctx = ray.init(
            address="local",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            resources=resources,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(8265) if dashboard else None,
            object_store_memory=object_store_mb * 1024 * 1024,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=True,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(temp_dir),
            _system_config=system_config,
        )
    # What `python -m servekit.cleanup` needs to find this cluster if this process dies without
    # stopping it: the driver, the session folder, and the Ray processes running now.
    _state["registry"] = record_cluster(temp_dir, ctx.address_info["session_dir"])
    quiet_ray_logging()
    return ctx


def start_serve(port: int = 8000, access_log: bool = True) -> int:
    """Start Serve's HTTP proxy on 127.0.0.1; returns the port.

    ``access_log=False`` stops the proxy writing a log line per request (measurements
    of throughput turn it off: on 2 cores it is a visible share of the proxy's CPU).

    HTTP options only take effect before the first ``serve.run``: a proxy that is
    already up keeps its port and ignores new options (Serve logs a warning naming the fields that
    differ). If ``port`` is taken
    (often another notebook's cluster still running), Serve gets a free port instead
    and this says so.
    """
    from ray import serve

    # Two notebooks (or test runs) starting Serve at the same moment would both find 8000 free and the
    # second proxy would fail to bind it: choosing the port and binding it happen under one lock.
    with machine_lock("servekit-serve-port"):
        chosen = free_port(port)
        if chosen != port:
            print(
                f"Port {port} is busy (another notebook's Ray cluster?); Serve listens on {chosen} instead."
            )
        quiet_ray_logging()  # importing ray.serve for the first time resets its logger to INFO
        serve.start(  # returns once the proxy is up, i.e. listening on the port
            http_options={"host": "127.0.0.1", "port": chosen},
            logging_config={"enable_access_log": access_log},
        )
    _state["port"] = chosen
    quiet_ray_logging()
    return chosen


def serve_port() -> int | None:
    """The port ``start_serve`` chose in this process, or None before it (or after ``shutdown``)."""
    port = _state.get("port")
    return port if isinstance(port, int) else None


def serve_url(route_prefix: str = "/") -> str:
    """The HTTP address of an app, on the port ``start_serve`` chose."""
    port = _state.get("port", 8000)
    return f"http://127.0.0.1:{port}/{route_prefix.lstrip('/')}"


def shutdown() -> None:
    """Stop Serve, then Ray (``ray.shutdown()`` alone leaves Serve's actors to die with the
    cluster without a graceful stop), and remove the cluster's registry file and the temporary
    session folder if one was made."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
    _forget(os.getpid())
    _state.pop("port", None)
