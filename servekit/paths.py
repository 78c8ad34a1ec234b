"""Where the course keeps things: everything a notebook writes goes under scratch/."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
DATA: Path = REPO_ROOT / "data"
#: Git-ignored folder for all files the notebooks create (Ray session logs, built models).
SCRATCH: Path = Path(os.environ.get("SERVEKIT_SCRATCH", REPO_ROOT / "scratch")).resolve()
