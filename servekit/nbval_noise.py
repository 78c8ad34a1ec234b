"""nbval: an output stream that the course's sanitizer empties entirely counts as no output.

nbval compares a cell's output *fields* before their text: a cell stored with no stdout fails with
"Unexpected output fields: {'stdout'}" when a run prints one line the sanitizer deletes (the
``start_serve`` note that port 8000 is busy, a node restarted on another port, Serve's shutdown
retries), although the sanitized texts are equal. This drops such streams from both sides before
nbval compares; every other stream is compared as before. The root conftest installs it for
``make test``; ``pytest -p servekit.nbval_noise`` installs it elsewhere (tests/test_nbval_canary.py).
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_course_noise_filter"


def _noise_only(item: Any, output: Any) -> bool:
    return output.get("output_type") == "stream" and item.sanitize(output.get("text", "")) == ""


def install() -> None:
    """Wrap nbval's ``IPyNbCell.compare_outputs`` once (idempotent)."""
    from nbval.plugin import IPyNbCell

    original = IPyNbCell.compare_outputs
    if getattr(original, _PATCHED, False):
        return

    def compare_outputs(self, test, ref, skip_compare=None):  # noqa: ANN001, ANN202 - nbval's signature
        test = [o for o in test if not _noise_only(self, o)]
        ref = [o for o in ref if not _noise_only(self, o)]
        return original(self, test, ref, skip_compare)

    setattr(compare_outputs, _PATCHED, True)
    IPyNbCell.compare_outputs = compare_outputs


def pytest_configure(config: Any) -> None:  # as a plugin: pytest -p servekit.nbval_noise
    install()
