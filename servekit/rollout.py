"""Rollouts from a notebook: config deploys, the replicas of an app, waiting on async checks.

``deploy_config(config)`` is what ``serve run config.yaml --non-blocking`` does, in this
process: validate the config (a dict, as the YAML file would load) into a ``ServeDeploySchema``,
then hand it to Serve's controller. A config deploy gives each deployment a code version derived
from its import path, runtime environment and arguments, so a new config that changes only a
deployment's ``user_config`` reconfigures its replicas in place (lesson 07 shows the two steps
in full). ``serve_start`` is internal API: in scripts and CI use ``serve run``/``serve deploy``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from servekit.wait import WaitTimeout

T = TypeVar("T")


def deploy_config(config: dict[str, Any]) -> None:
    """Validate ``config`` (the YAML's content) and submit it to Serve's controller."""
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    serve_start().deploy_apps(ServeDeploySchema.model_validate(config))


def replica_ids(app: str, deployment: str | None = None) -> set[str]:
    """Names of the live replica actors of ``app`` (of one ``deployment`` if given).

    Each replica is a named actor ``SERVE_REPLICA::<app>#<deployment>#<id>``: a restart gives a
    new name, an in-place ``reconfigure`` keeps it.
    """
    import ray

    prefix = f"SERVE_REPLICA::{app}#" + (f"{deployment}#" if deployment else "")
    return {
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)
    }


async def wait_for_async(
    predicate: Callable[[], Awaitable[T]], timeout_s: float, what: str, poll_s: float = 0.25
) -> T:
    """``servekit.wait_for`` for checks that await (handle calls in a notebook cell).

    A notebook cell runs inside the kernel's event loop, where a handle's blocking ``.result()``
    is refused: await ``predicate()`` every ``poll_s`` seconds until it returns something truthy;
    :class:`servekit.WaitTimeout` after ``timeout_s`` names ``what`` and the last value.
    """
    if timeout_s <= 0 or poll_s <= 0:
        raise ValueError("timeout_s and poll_s must be > 0")
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout_s:g} s (last seen: {value!r})")
        await asyncio.sleep(poll_s)
