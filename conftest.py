"""Guard for notebook runs: no process a notebook's kernel started may outlive the notebook.

Each notebook under nbval runs in its own kernel, a child of pytest. This process becomes a
"child subreaper", so that anything the kernel left running (raylet, gcs_server, Serve
replicas, a server the notebook forgot) stays our descendant even after the kernel exits.
When the last cell of a notebook has run and nbval has shut its kernel down, every
descendant still alive is a leftover: we stop it by PID (never by name, which would hit a
learner's other Ray clusters) and fail the notebook's last cell, so a leak cannot pass. Then the
session folders in /tmp and the registry files of clusters that are gone are removed.
"""

from __future__ import annotations

import pytest

from servekit.cleanup import become_subreaper, reap_leftovers, remove_stale


def pytest_configure(config: pytest.Config) -> None:
    become_subreaper()


def _is_notebook_item(item: pytest.Item) -> bool:
    return str(getattr(item, "fspath", "")).endswith(".ipynb")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    result = yield  # nbval's collector teardown (kernel shutdown) runs inside this when the notebook ends
    if not _is_notebook_item(item) or (nextitem is not None and nextitem.parent is item.parent):
        return result
    names = reap_leftovers(grace_s=10)
    remove_stale()  # nbval SIGKILLs the kernel: its /tmp session folder and registry file are ours to remove
    if names:
        item.add_report_section("teardown", "leftover processes", "\n".join(names))
        raise pytest.fail.Exception(
            f"{item.fspath.basename} left {len(names)} process(es) running after its kernel stopped "
            f"(stopped them by PID): {', '.join(names)}",
            pytrace=False,
        )
    return result
