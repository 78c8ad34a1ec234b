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


@contextlib.contextmanager
def _env_for_new_processes(name: str, value: str, keep_yours: bool = True) -> Iterator[None]:
    """``name=value`` in the environment of the processes a ``ray.init`` in this block starts.

    GCS, raylet and dashboard inherit it from this process, agents and workers from the raylet.
    The variable is put back after the block, so processes this one starts later are not affected.
    With ``keep_yours``, a value already set (by you) is kept.
    """
    saved = os.environ.get(name)
    if saved is None or not keep_yours:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


#: With "0", Ray runs in its single-machine mode (its default on macOS and Windows): the node's
#: address stays 127.0.0.1 instead of being rewritten to the machine's, and nodes cannot be added.
SINGLE_MACHINE_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _single_machine_mode() -> Iterator[None]:
    """Ray's single-machine mode for the processes a ``ray.init`` in this block starts.

    Every Ray process reads the variable once, when it imports Ray (``ray_constants``). GCS, raylet
    and dashboard are started by ``ray.init`` and inherit this process's environment; agents and
    workers inherit the raylet's. This process imported Ray long before, so its module attribute is
    set too: ``services.get_node_ip_address()`` reads it at call time, and without it ``ray.init``
    rewrites ``_node_ip_address="127.0.0.1"`` to the machine's address. Both are put back after the
    block: the running cluster keeps its copy (the driver asks its node from then on), and a
    ``ray start`` run later from this process (servekit.ray_cluster) can still add nodes.
    """
    from ray._private import ray_constants

    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with _env_for_new_processes(SINGLE_MACHINE_VAR, "0", keep_yours=False):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag


@contextlib.contextmanager
def _without_idle_helpers(api_server: bool) -> Iterator[None]:
    """A ``ray.init`` in this block starts no autoscaler monitor and no log monitor, and no API
    server unless ``api_server``.

    On a fixed-size local cluster whose logs stay in files (``log_to_driver=False``) the three only
    take memory: the monitor (about 60 MB) reports resource demand to an autoscaler that has no
    nodes to add, the log monitor (about 55 MB) copies worker log lines to drivers that asked not to
    get them, and without the dashboard the API server (about 85 MB) loads only Ray's usage-stats
    module. ``ray.init`` has no argument for them (``ray start`` has ``--no-monitor``): the block
    hands ``ray.init`` a ``RayParams`` with the monitors off and skips ``Node.start_api_server``;
    both are put back after it.
    """
    from ray._private import node, parameter

    base = parameter.RayParams

    class Params(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.no_monitor, self.include_log_monitor = True, False

    saved_start = node.Node.start_api_server
    parameter.RayParams = Params
    if not api_server:
        node.Node.start_api_server = lambda self, **_: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        parameter.RayParams = base
        node.Node.start_api_server = saved_start  # type: ignore[method-assign]


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
        _single_machine_mode() if loopback_only else contextlib.nullcontext(),
        _without_idle_helpers(api_server=dashboard) if lean else contextlib.nullcontext(),
        _env_for_new_processes(*MALLOC_ARENAS) if lean else contextlib.nullcontext(),
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
