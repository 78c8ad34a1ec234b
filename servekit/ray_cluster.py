"""A real multi-node Ray cluster on this machine, started the way a platform team starts one.

Lesson 09 runs its service on a cluster of ``ray start`` processes instead of the notebook's own
``ray.init()``: a head node (GCS, dashboard and its REST API on 127.0.0.1, which the ``serve`` CLI
talks to) and worker nodes joining it, each with its own CPUs and custom resources. Token
authentication is on for all of it: every process this module starts (nodes, ``serve`` and ``ray``
commands) gets ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` in its environment, and a driver
(the notebook) must set both before ``ray.init(address=...)`` (:meth:`LocalCluster.connect`).

Each node is one ``ray start ... --block`` process in its own process group: stopping a node is
a signal to that group (then, by PID, anything of it that is left), never ``ray stop``, which
would kill every Ray process on the machine, matched by name. The nodes write their session under
the kit's Ray temp dir and are recorded in :mod:`servekit.cleanup`'s registry, so
``python -m servekit.cleanup --kill`` finds them if the kernel that started them dies.

Unlike :func:`servekit.start_ray`'s one-node clusters, these nodes cannot bind loopback only:
Ray's single-machine mode, which does, refuses a second node, so the commands run here never
inherit its switch (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``) from this process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from servekit.cluster import free_port, ray_temp_dir
from servekit.ray_patches import SINGLE_MACHINE_VAR

HOST = "127.0.0.1"
#: Faster node-failure detection than Ray's default (a missed health check every 3 s, 5 in a row):
#: the GCS declares a node dead after about 3 x 1 s, so a drill fits in seconds.
FAST_NODE_FAILURE = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
#: A port is chosen free, then bound by the node seconds later: another program (a second notebook, a
#: parallel test run) can take it in between. A node that exits because of that is started again on a
#: port the OS picks, at most this many times in all. So is a node whose raylet did not register
#: with the GCS within Ray's own 30 s (``ray start`` then exits with :data:`OVERLOADED`): that
#: happens on a 2-core machine that other work keeps busy, and a second try usually finds it calmer.
START_ATTEMPTS = 3
#: What Ray's node.py raises when the raylet did not register in time ("... or the GCS has become
#: overloaded"): a busy machine, not a broken node.
OVERLOADED = "timed out during startup"


class NodeExited(RuntimeError):
    """A node's ``ray start`` process exited while the cluster waited for it (its log says why)."""


class PortTaken(RuntimeError):
    """A node could not bind a port because another process holds it."""


def _bin(name: str) -> str:
    """The ``ray`` / ``serve`` command of this Python environment (not whatever is first on PATH)."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else (shutil.which(name) or name)


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    metrics_port: int
    num_cpus: float
    resources: dict[str, float] = field(default_factory=dict)
    stopped: bool = False  # stopped on purpose (stop_node), so its exit is no error

    @property
    def pid(self) -> int:
        return self.process.pid

    def processes(self) -> list[psutil.Process]:
        """The ``ray start`` process and every process it started (GCS, raylet, workers, agents)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class LocalCluster:
    """Nodes started by :func:`start_cluster`; stop them with :meth:`stop` (or ``stop_node``)."""

    temp_dir: Path
    gcs_port: int
    dashboard_port: int
    token: str
    env: dict[str, str]  # what every Ray/serve process of this cluster needs, on top of os.environ
    nodes: dict[str, Node] = field(default_factory=dict)
    log_dir: Path | None = None
    registry: Path | None = None

    @property
    def address(self) -> str:
        """The GCS address: ``ray start --address``, ``ray.init(address=...)``."""
        return f"{HOST}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard's REST API: the ``serve`` CLI's ``--address`` (``RAY_DASHBOARD_ADDRESS``)."""
        return f"http://{HOST}:{self.dashboard_port}"

    def metrics_url(self, node: str = "head") -> str:
        """The node's Prometheus endpoint (Ray's, Serve's and your own ``ray.serve.metrics``)."""
        return f"http://{HOST}:{self.nodes[node].metrics_port}/metrics"

    def full_env(self) -> dict[str, str]:
        """This process's environment and the cluster's, without Ray's single-machine switch: a
        ``ray start`` that sees it refuses to add a node to a cluster (see ``servekit.start_ray``)."""
        inherited = {k: v for k, v in os.environ.items() if k != SINGLE_MACHINE_VAR}
        return {**inherited, **self.env}

    def add_node(
        self, name: str, num_cpus: float = 1, resources: dict[str, float] | None = None, timeout_s: float = 60
    ) -> Node:
        """Start a worker node that joins this cluster; returns once the cluster counts it alive."""
        if name in self.nodes and self.nodes[name].running():
            raise ValueError(f"node {name!r} is running already")
        ports = {"metrics-export-port": free_port(0)}

        def args() -> list[str]:
            return [
                f"--address={self.address}",
                f"--num-cpus={num_cpus}",
                f"--resources={json.dumps(resources or {})}",
                "--dashboard-agent-listen-port=0",  # the head's agent holds the default port 52365
                f"--metrics-export-port={ports['metrics-export-port']}",
            ]

        node = self._start_bound(name, ports, args, num_cpus, resources or {}, timeout_s)
        self._record()
        return node

    def _start_bound(
        self,
        name: str,
        ports: dict[str, int],
        args: Callable[[], list[str]],
        num_cpus: float,
        resources: dict,
        timeout_s: float,
        fixed: frozenset[str] = frozenset(),
    ) -> Node:
        """Start node ``name`` with ``args()`` and wait until the cluster counts it alive. When it exits
        because another process took one of its ``ports`` (flag -> port) meanwhile, start it again with a
        port the OS picks (``ports`` is updated in place), unless the port is one of ``fixed`` (the
        caller chose it), at most :data:`START_ATTEMPTS` times in all."""
        for attempt in range(1, START_ATTEMPTS + 1):
            offset = self._log_size(name)
            node = self._start(name, args(), ports["metrics-export-port"], num_cpus, resources)
            try:
                self.wait_for_nodes(1 if name == "head" else None, timeout_s=timeout_s)
                return node
            except NodeExited as exc:
                self.stop_node(name)  # what of it is left, by PID
                taken = {flag: port for flag, port in ports.items() if free_port(port) != port}
                if not taken:
                    if OVERLOADED in self._log_text(name, offset) and attempt < START_ATTEMPTS:
                        print(f"Node {name!r} {OVERLOADED} (a busy machine?); starting it again.")
                        continue
                    raise
                said = ", ".join(f"--{flag}={port}" for flag, port in taken.items())
                if attempt == START_ATTEMPTS or taken.keys() & fixed:
                    raise PortTaken(
                        f"node {name!r} exited: another process holds {said} (tried {attempt} time(s)); "
                        f"see {self.log_dir / (name + '.log')}"
                    ) from exc
                print(f"Port(s) {said} taken by another process meanwhile; starting {name!r} on others.")
                ports.update({flag: free_port(0) for flag in taken})
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self, name: str, args: list[str], metrics_port: int, num_cpus: float, resources: dict) -> Node:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the node process keeps it
        cmd = [_bin("ray"), "start", *args, f"--node-ip-address={HOST}", "--disable-usage-stats", "--block"]
        process = subprocess.Popen(
            cmd, env=self.full_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        node = self.nodes[name] = Node(name, process, metrics_port, num_cpus, resources)
        return node

    def _record(self) -> None:
        """(Re)write the cleanup registry: this driver, the session, every node's processes."""
        from servekit.cleanup import record_cluster

        self.registry = record_cluster(self.temp_dir, str((self.temp_dir / "session_latest").resolve()))

    def _log_size(self, name: str) -> int:
        try:
            return (self.log_dir / f"{name}.log").stat().st_size
        except (OSError, TypeError):
            return 0

    def _log_text(self, name: str, offset: int = 0) -> str:
        """A node's ``ray start`` log from byte ``offset`` on (each start of the node appends to it)."""
        try:
            with open(self.log_dir / f"{name}.log", "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def _last_error(self, name: str) -> str:
        """The last line of a node's log that names an error or exception (Ray's traceback ends with it)."""
        lines = self._log_text(name).splitlines()
        errors = [line.strip() for line in lines if any(w in line for w in ("Error", "error", "Exception"))]
        return errors[-1][:300] if errors else "no error in its log"

    def alive_nodes(self) -> list[dict]:
        """The nodes the cluster counts alive, from the dashboard's state API (token sent)."""
        r = requests.get(
            f"{self.dashboard_url}/api/v0/nodes",
            headers={"Authorization": f"Bearer {self.token}"},
            params={"filter_keys": "state", "filter_predicates": "=", "filter_values": "ALIVE"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["data"]["result"]["result"]

    def wait_for_nodes(self, count: int | None = None, timeout_s: float = 60) -> list[dict]:
        """Wait until ``count`` (default: all running) nodes are alive; a node that exits raises."""
        deadline = time.monotonic() + timeout_s
        while True:
            running = [n for n in self.nodes.values() if n.running()]
            want = len(running) if count is None else count
            try:
                alive = self.alive_nodes()
                if len(alive) == want:
                    return alive
            except (requests.RequestException, KeyError, ValueError):
                alive = []
            exited = [n.name for n in self.nodes.values() if not n.running() and not n.stopped]
            if exited:
                raise NodeExited(
                    f"node(s) {exited} exited: {self._last_error(exited[0])}; see {self.log_dir}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(alive)} node(s) alive after {timeout_s:.0f} s, wanted {want}")
            time.sleep(0.25)

    def stop_node(self, name: str, sig: int = signal.SIGKILL, timeout_s: float = 10) -> float:
        """Stop one node: ``sig`` to its process group (SIGKILL: the node crashes, as when a machine
        dies; SIGTERM: ``ray start --block`` first drains the node, up to 30 s), then SIGKILL by PID
        to whatever of it is left after ``timeout_s``. Returns the seconds it took."""
        from servekit.cleanup import kill_processes

        node = self.nodes[name]
        node.stopped = True
        start = time.monotonic()
        procs = node.processes()
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            pass
        try:
            node.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        kill_processes([p for p in procs if _alive(p)], timeout_s=5)
        return time.monotonic() - start

    def stop(self) -> None:
        """Stop every node, workers first, and forget the cluster in the cleanup registry."""
        for name in sorted(self.nodes, key=lambda n: n == "head"):
            if self.nodes[name].running() or any(_alive(p) for p in self.nodes[name].processes()):
                self.stop_node(name)
        if self.registry is not None:
            self.registry.unlink(missing_ok=True)

    def pids(self) -> dict[int, str]:
        """PID -> node name, for every process of every running node."""
        return {p.pid: name for name, node in self.nodes.items() for p in node.processes() if _alive(p)}

    def run(self, *cmd: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess:
        """Run a command (``serve status``, ``ray status``...) with the cluster's environment."""
        exe = [_bin(cmd[0]), *cmd[1:]] if cmd[0] in ("serve", "ray") else list(cmd)
        out = subprocess.run(
            exe, env=self.full_env(), capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return out

    def serve(self, *args: str, check: bool = True, timeout_s: float = 120) -> str:
        """``serve <args>`` against this cluster's dashboard; returns its stdout."""
        return self.run("serve", *args, check=check, timeout_s=timeout_s).stdout

    def connect(self, **init_kwargs):
        """Connect this process to the cluster as a driver (``ray.init(address=...)``), quietly.

        Puts the token and ``RAY_AUTH_MODE=token`` in this process's environment first: a driver
        without them is refused by an authenticating cluster."""
        import logging

        import ray

        from servekit.cluster import quiet_ray_logging

        os.environ.update(self.env)
        quiet_ray_logging()
        kwargs = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        ctx = ray.init(address=self.address, **(kwargs | init_kwargs))
        quiet_ray_logging()
        return ctx


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start_cluster(
    num_cpus: float = 2,
    resources: dict[str, float] | None = None,
    object_store_mb: int = 100,
    metrics_port: int = 0,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 90,
) -> LocalCluster:
    """Start a head node on 127.0.0.1 with the dashboard (127.0.0.1, a free port), token
    authentication on and a fixed metrics export port (``metrics_port``, or a free one); returns
    once the dashboard answers and the node is alive. ``extra_env`` goes to every process (e.g.
    :data:`FAST_NODE_FAILURE`)."""
    temp_dir = ray_temp_dir()
    log_dir = temp_dir / "ray_start_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    ports = {"port": free_port(6380), "dashboard-port": free_port(8265)}
    ports["metrics-export-port"] = metrics_port or free_port(0)
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, **(extra_env or {})}  # see the docstring
    cluster = LocalCluster(temp_dir, ports["port"], ports["dashboard-port"], token, env, log_dir=log_dir)

    def args() -> list[str]:
        cluster.gcs_port, cluster.dashboard_port = ports["port"], ports["dashboard-port"]
        env["RAY_DASHBOARD_ADDRESS"] = cluster.dashboard_url  # the serve CLI's default --address
        # This process is the cluster's first client: a driver it starts (ray.init) must find the token
        # and the mode in its environment before Ray is imported, and so must what that driver launches.
        os.environ.update(env)
        return [
            "--head",
            f"--port={ports['port']}",
            f"--num-cpus={num_cpus}",
            f"--resources={json.dumps(resources or {})}",
            f"--temp-dir={temp_dir}",
            f"--object-store-memory={object_store_mb * 1024 * 1024}",
            "--include-dashboard=true",
            f"--dashboard-host={HOST}",
            f"--dashboard-port={ports['dashboard-port']}",
            f"--metrics-export-port={ports['metrics-export-port']}",
        ]

    fixed = frozenset({"metrics-export-port"} if metrics_port else ())
    try:
        cluster._start_bound("head", ports, args, num_cpus, resources or {}, timeout_s, fixed)
        cluster._record()
    except BaseException:
        cluster.stop()
        raise
    return cluster
