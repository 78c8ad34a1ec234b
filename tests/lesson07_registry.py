"""A small MLflow registry for tests of lesson 07's app: the course's model logged as versions.

Every version is the model from code in course_apps/sentiment_model.py with the shipped head
(``data/models/sentiment-head``); ``signature_column`` lets a test log a version whose signature
wants another input column, to reach the app's schema-error path.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import course_apps.sentiment_model as sentiment_model
from servekit.paths import DATA

HEAD = DATA / "models" / "sentiment-head" / "head.safetensors"


def make_registry(folder: Path) -> str:
    """A fresh SQLite registry with an artifact folder under ``folder``; returns its tracking URI."""
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("tests", artifact_location=(folder.resolve() / "artifacts").as_uri())
    mlflow.set_experiment("tests")
    return uri


def log_version(name: str = "sentiment", signature_column: str = "text") -> int:
    """Log and register one version in the current registry; returns its version number."""
    columns = [ColSpec("string", "label"), ColSpec("double", "score")]
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", signature_column)]),
        outputs=Schema(columns + [ColSpec("double", label) for label in sentiment_model.LABELS]),
    )
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(sentiment_model.__file__)),
            artifacts={"head": str(HEAD)},
            signature=signature,
            input_example=pd.DataFrame({signature_column: ["I love this course!"]}),
            pip_requirements=["mlflow"],
            registered_model_name=name,
        )
    return int(info.registered_model_version)
