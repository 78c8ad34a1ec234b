"""Run one function in a fresh Python process that exits when it returns, and get its result back.

What the function imports (torch, a model) stays in that process and goes with it, so a notebook
kernel can try a model without keeping a few hundred MB of imports for the rest of the lesson.
The function and its arguments travel with cloudpickle (Ray's copy), so a function defined in a
notebook works; the result and an exception raised in the child come back with pickle.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

# The child: the payload on stdin, the pickled (ok, value) on the real stdout; whatever the function
# prints (Python or C code) goes to stderr, which the parent keeps for the error message.
_CHILD = """
import os, pickle, sys, traceback
result = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.stdout = sys.stderr
fn, args, kwargs = pickle.load(sys.stdin.buffer)
try:
    outcome = (True, fn(*args, **kwargs))
except Exception as exc:
    traceback.print_exc()
    outcome = (False, exc)
result.write(pickle.dumps(outcome))
result.close()
"""


class ChildFailed(RuntimeError):
    """The child process died or sent nothing back; the message ends with its last lines of stderr."""


def in_child(
    fn: Callable[..., T],
    *args,
    timeout_s: float = 300,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    **kwargs,
) -> T:
    """``fn(*args, **kwargs)`` in a new Python process; its return value, or its exception re-raised
    (with the child's last lines of stderr as a note). ``env`` is the child's whole environment
    (default: this process's), ``cwd`` its working folder (default: this process's)."""
    from ray import cloudpickle  # here, not at the top: importing servekit does not import Ray

    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=cloudpickle.dumps((fn, args, kwargs)),
        capture_output=True,
        timeout=timeout_s,
        env=env,
        cwd=cwd,
    )
    if done.returncode != 0 or not done.stdout:
        raise ChildFailed(f"the child process exited with code {done.returncode}:\n{_tail(done.stderr)}")
    ok, value = pickle.loads(done.stdout)
    if not ok:
        value.add_note(f"the child's stderr ends:\n{_tail(done.stderr)}")
        raise value
    return value


def _tail(stderr: bytes, lines: int = 10) -> str:
    return "\n".join(stderr.decode(errors="replace").strip().splitlines()[-lines:])
