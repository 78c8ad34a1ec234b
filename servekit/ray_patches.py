"""Every patch the kit applies to Ray's private code, in one place, for the Ray it was written for.

``servekit.start_ray`` changes how ``ray.init`` starts a local cluster in two ways that Ray has no
argument for: single-machine mode (everything on 127.0.0.1) and no idle helper processes (autoscaler
monitor, log monitor, API server). Both reach into ``ray._private``, which changes between releases
without notice, so each checks :data:`WRITTEN_FOR` first: on another Ray minor version it warns and
leaves Ray's defaults alone (the cluster then starts as plain ``ray.init`` would) instead of patching
code it was not written against. ``tests/test_servekit_loopback.py`` and ``test_servekit_lean.py``
check the effect on the pinned Ray.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

#: The Ray minor version these patches were written and tested for (requirements.txt pins it).
WRITTEN_FOR = "2.60"


def written_for_this_ray() -> bool:
    """True when the installed Ray is :data:`WRITTEN_FOR`; otherwise warns (once per call) and is False."""
    import ray

    if ray.__version__ == WRITTEN_FOR or ray.__version__.startswith(WRITTEN_FOR + "."):
        return True
    warnings.warn(
        f"servekit's patches of ray._private were written for Ray {WRITTEN_FOR}, not {ray.__version__}: "
        "left out (Ray's own defaults apply: more processes, and addresses other than 127.0.0.1)",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


@contextlib.contextmanager
def env_for_new_processes(name: str, value: str, keep_yours: bool = True) -> Iterator[None]:
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
def single_machine_mode() -> Iterator[None]:
    """Ray's single-machine mode for the processes a ``ray.init`` in this block starts.

    Every Ray process reads the variable once, when it imports Ray (``ray_constants``). GCS, raylet
    and dashboard are started by ``ray.init`` and inherit this process's environment; agents and
    workers inherit the raylet's. This process imported Ray long before, so its module attribute is
    set too: ``services.get_node_ip_address()`` reads it at call time, and without it ``ray.init``
    rewrites ``_node_ip_address="127.0.0.1"`` to the machine's address. Both are put back after the
    block: the running cluster keeps its copy (the driver asks its node from then on), and a
    ``ray start`` run later from this process (servekit.ray_cluster) can still add nodes.
    """
    if not written_for_this_ray():
        yield
        return
    from ray._private import ray_constants

    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with env_for_new_processes(SINGLE_MACHINE_VAR, "0", keep_yours=False):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag


@contextlib.contextmanager
def without_idle_helpers(api_server: bool) -> Iterator[None]:
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
    if not written_for_this_ray():
        yield
        return
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
