"""servekit.sockets against real sockets this test opens: one on 127.0.0.1, one on 0.0.0.0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import psutil
import pytest

from servekit.sockets import ListeningSocket, exposed, is_loopback, listening_sockets, process_name


@pytest.fixture
def two_listeners():
    local = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    everywhere = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        local.bind(("127.0.0.1", 0))
        everywhere.bind(("0.0.0.0", 0))
        local.listen()
        everywhere.listen()
        client.connect(local.getsockname())  # an established connection: not a listener
        yield local.getsockname()[1], everywhere.getsockname()[1], client.getsockname()[1]
    finally:
        for s in (client, local, everywhere):
            s.close()


def test_lists_both_listeners_and_flags_the_exposed_one(two_listeners):
    local_port, everywhere_port, client_port = two_listeners
    listed = listening_sockets([os.getpid()])
    mine = [s for s in listed if s.port in (local_port, everywhere_port)]
    assert sorted((s.proto, s.address, s.port) for s in mine) == sorted(
        [("tcp", "127.0.0.1", local_port), ("tcp", "0.0.0.0", everywhere_port)]
    )
    assert all(s.pid == os.getpid() and s.name for s in mine)
    assert [(s.address, s.port) for s in exposed(mine)] == [("0.0.0.0", everywhere_port)]
    # the connected client socket (same process) is not a listener
    assert client_port not in {s.port for s in listed}


def test_udp_ipv6_and_other_processes():
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,sys,time\ns=socket.socket(socket.AF_INET6)\n"
            "s.bind(('::', 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port6 = int(child.stdout.readline())
        found = listening_sockets([os.getpid(), child.pid, 2**22 + 12345])  # a PID that does not exist
        me = process_name(psutil.Process())
        assert ListeningSocket("udp", "127.0.0.1", udp.getsockname()[1], os.getpid(), me) in found
        theirs = [s for s in found if s.pid == child.pid]
        assert [(s.proto, s.address, s.port, s.name) for s in theirs] == [("tcp6", "::", port6, "python")]
        assert exposed(theirs) == theirs
    finally:
        child.kill()
        child.wait()
        udp.close()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("fe80::1%eth0", False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback
