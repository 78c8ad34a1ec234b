"""Which sockets a set of processes listens on, and which of them other machines can reach.

Lesson 09 lists its cluster's listening sockets: a socket bound to 127.0.0.1 (or ::1) is
reachable only from this machine; one bound to 0.0.0.0, ::, or the machine's own address is
reachable by anyone who can route to the machine (a shared workstation, a Binder node's network).

Measured with Ray 2.60 on Linux: ``_node_ip_address="127.0.0.1"`` / ``--node-ip-address=127.0.0.1``
alone is rewritten to the machine's address, and GCS, raylet, workers, agents and metrics listen on
all interfaces or that address. With ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment of
every Ray process (the single-machine mode Ray uses on macOS and Windows) the node address stays
127.0.0.1 and all of them bind loopback; what remains exposed is each Serve replica's
inter-deployment gRPC server, hard-coded to ``[::]:0`` (token authentication guards it). In that
mode ``ray start --address=...`` refuses to add a second node. ``servekit.start_ray`` runs its
one-node clusters in that mode (``loopback_only=True``); ``servekit.ray_cluster``'s nodes cannot.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

_PROTO = {
    (socket.AF_INET, socket.SOCK_STREAM): "tcp",
    (socket.AF_INET6, socket.SOCK_STREAM): "tcp6",
    (socket.AF_INET, socket.SOCK_DGRAM): "udp",
    (socket.AF_INET6, socket.SOCK_DGRAM): "udp6",
}


@dataclass(frozen=True, order=True)
class ListeningSocket:
    """One listening TCP socket (or bound, unconnected UDP socket) of one process."""

    proto: str  # "tcp", "tcp6", "udp" or "udp6"
    address: str  # the bound address: "127.0.0.1", "0.0.0.0", "::", or an interface's address
    port: int
    pid: int
    name: str  # what the process is: its program, script, or the title Ray gave it

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1, or ::ffff:127.x.x.x)."""
        return is_loopback(self.address)


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone such as "%eth0"
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def process_name(proc: psutil.Process) -> str:
    """A readable name: Ray's rewritten titles (``ray::ServeReplica:app:X``), a Python script's file
    name or ``-m`` module (``dashboard/agent.py`` -> ``agent.py``), else the program's name."""
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        cmdline = []
    if not cmdline:
        try:
            return proc.name()
        except psutil.Error:
            return "?"
    # A rewritten title may sit in argv[0] with spaces ("ray::IDLE", "ray-dashboard-... args")
    program = os.path.basename(cmdline[0].split(" ", 1)[0])
    if not program.startswith("python"):
        return program
    for i, arg in enumerate(cmdline[1:], start=1):
        if arg == "-m" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.endswith(".py"):
            return os.path.basename(arg)
    return program


def listening_sockets(pids: Iterable[int]) -> list[ListeningSocket]:
    """The listening TCP sockets and bound UDP sockets of ``pids`` (IPv4 and IPv6), sorted.

    Processes that are gone or that this user may not inspect are skipped. A socket shared by
    several processes (inherited across fork) is listed once per process.
    """
    found: set[ListeningSocket] = set()
    for pid in set(pids):
        try:
            proc = psutil.Process(pid)
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        name = process_name(proc)
        for c in conns:
            proto = _PROTO.get((c.family, c.type))
            if proto is None or not c.laddr:
                continue
            if c.type == socket.SOCK_STREAM and c.status != psutil.CONN_LISTEN:
                continue
            if c.type == socket.SOCK_DGRAM and c.raddr:
                continue  # a connected UDP socket is a client, not a listener
            found.add(ListeningSocket(proto, c.laddr.ip, c.laddr.port, pid, name))
    return sorted(found, key=lambda s: (s.port, s.proto, s.address, s.pid))


def exposed(sockets: Iterable[ListeningSocket]) -> list[ListeningSocket]:
    """The sockets that are not bound to a loopback address: other machines may reach them."""
    return [s for s in sockets if not s.loopback]
