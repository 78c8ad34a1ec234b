"""Lesson 07's service: serve the sentiment model that an MLflow registry alias points to.

The deployment loads ``models:/<name>@<alias>`` in ``reconfigure``, so a new ``user_config``
(a config deploy with ``serve deploy``, ``serve run config.yaml`` or the REST API) loads the
alias's current version into the running replicas without restarting them. Every answer says
which model version produced it. The registry's address comes from the replica's
environment (``MLFLOW_TRACKING_URI``, set through the deployment's ``runtime_env``).

Import path for configs: ``course_apps.sentiment_registry:app``.
"""

from __future__ import annotations

import asyncio
import re

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_CHARS = 2000
ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def load_alias(model_uri: str) -> tuple[mlflow.pyfunc.PyFuncModel, int]:
    """Resolve ``models:/name@alias`` to a version number, then load exactly that version.

    Loading by number, not by alias, means the answer's version is the one that was loaded
    even if someone moves the alias in between.
    """
    match = ALIAS_URI.match(model_uri)
    if match is None:
        raise ValueError(f"model_uri must look like models:/name@alias, not {model_uri!r}")
    found = MlflowClient().get_model_version_by_alias(match["name"], match["alias"])
    model = mlflow.pyfunc.load_model(f"models:/{match['name']}/{found.version}")
    return model, int(found.version)


@serve.deployment(
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=16,
    user_config={"model_uri": "models:/sentiment@champion"},
)
class SentimentAnalyzer:
    def __init__(self):
        self.served: tuple[mlflow.pyfunc.PyFuncModel, int] | None = None  # (model, version), swapped at once

    async def reconfigure(self, config: dict) -> None:
        """Runs at start and whenever a config deploy brings a different ``user_config``.

        Only ``model_uri`` is read; any other key (the lesson bumps a ``rollout`` counter) only
        makes the config differ, so that replicas re-resolve an alias that has moved.
        """
        # Load in a thread: the replica keeps answering with the version it has until the swap.
        self.served = await asyncio.to_thread(load_alias, config["model_uri"])

    def analyze(self, text) -> dict | JSONResponse:
        if not isinstance(text, str):
            return error(422, f"'text' must be a string, not {type(text).__name__}")
        if not text.strip():
            return error(422, "'text' is empty")
        if len(text) > MAX_CHARS:
            return error(413, f"'text' has {len(text)} characters; the limit is {MAX_CHARS}")
        try:
            text.encode("utf-8")  # fails on a lone surrogate such as "\ud800", which JSON allows
        except UnicodeEncodeError:
            return error(422, "'text' is not valid Unicode (it has a lone surrogate)")
        model, version = self.served
        try:
            row = model.predict(pd.DataFrame({"text": [text]})).iloc[0]
        except MlflowException as exc:  # the version's signature refused the input: a client error
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            reason = str(exc).rpartition("Error: ")[2]  # the message starts by echoing the input
            return error(422, f"model version {version} refused the input: {reason[:200]}")
        labels = [c for c in row.index if c not in ("label", "score")]
        return {
            "label": row["label"],
            "score": round(float(row["score"]), 3),
            "scores": {label: round(float(row[label]), 3) for label in labels},
            "model_version": version,
        }

    async def __call__(self, request: Request):
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # not JSON, not UTF-8, a huge number, nested too deep
            return error(400, 'the body must be JSON like {"text": "..."}')
        if not isinstance(body, dict) or "text" not in body:
            return error(422, "missing field 'text'")
        return self.analyze(body["text"])


app = SentimentAnalyzer.bind()
