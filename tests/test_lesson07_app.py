"""Lesson 07's registry-backed deployment (course_apps/sentiment_registry.py), without Ray.

The deployment's class is used directly: ``reconfigure`` loads from a real SQLite registry
(tests/lesson07_registry.py), and ``__call__`` gets real Starlette requests. What is checked:
the answer's schema and model version, an in-place switch of the alias, the course's 4xx for
bad bodies, and the signature's MlflowException turned into a short 422.
"""

from __future__ import annotations

import asyncio
import json
import sys

import mlflow
import pytest
from course_errors import BAD_BODIES
from lesson07_registry import log_version, make_registry
from starlette.requests import Request

from course_apps.sentiment_registry import SentimentAnalyzer, load_alias


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    previous = mlflow.get_tracking_uri()
    make_registry(tmp_path_factory.mktemp("registry"))
    v1, v2 = log_version(), log_version()
    odd = log_version(signature_column="review")  # a version whose signature wants another input
    client = mlflow.MlflowClient()
    for alias, version in (("champion", v1), ("challenger", v2), ("odd", odd)):
        client.set_registered_model_alias("sentiment", alias, version)
    yield {"v1": v1, "v2": v2, "odd": odd}
    mlflow.set_tracking_uri(previous)


def replica(model_uri: str = "models:/sentiment@champion"):
    instance = SentimentAnalyzer.func_or_class()
    asyncio.run(instance.reconfigure({"model_uri": model_uri, "rollout": 1}))
    return instance


def post(instance, body: bytes) -> tuple[int, dict]:
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/json")],
    }
    answer = asyncio.run(instance(Request(scope, receive)))
    if isinstance(answer, dict):
        return 200, answer
    return answer.status_code, json.loads(answer.body)


def test_answers_with_the_course_schema_and_the_version_it_loaded(registry):
    status, body = post(replica(), b'{"text": "I love this course!"}')
    assert status == 200
    assert set(body) == {"label", "score", "scores", "model_version"}
    assert body["model_version"] == registry["v1"] and body["label"] == "positive"
    assert set(body["scores"]) == {"negative", "neutral", "positive"}
    assert body["score"] == max(body["scores"].values()) and round(body["score"], 3) == body["score"]


def test_a_new_user_config_reloads_the_moved_alias_in_place(registry):
    instance = replica()
    mlflow.MlflowClient().set_registered_model_alias("sentiment", "champion", registry["v2"])
    try:
        assert post(instance, b'{"text": "fine"}')[1]["model_version"] == registry["v1"], "alias read at load"
        asyncio.run(instance.reconfigure({"model_uri": "models:/sentiment@champion", "rollout": 2}))
        assert post(instance, b'{"text": "fine"}')[1]["model_version"] == registry["v2"]
    finally:
        mlflow.MlflowClient().set_registered_model_alias("sentiment", "champion", registry["v1"])


@pytest.mark.parametrize(
    "body, status, message",
    [
        *BAD_BODIES,
        (
            json.dumps({"text": "so good " * 500}).encode(),
            413,
            "'text' has 4000 characters; the limit is 2000",
        ),
    ],
)
def test_bad_bodies_get_the_course_4xx(registry, body, status, message):
    assert post(replica(), body) == (status, {"error": message})


def test_a_signature_that_refuses_the_input_is_a_short_422(registry):
    status, body = post(replica("models:/sentiment@odd"), b'{"text": "a private sentence"}')
    assert status == 422
    assert body["error"].startswith(f"model version {registry['odd']} refused the input: ")
    assert "missing inputs ['review']" in body["error"] and "private" not in body["error"], "no echo"


def test_only_alias_uris_are_served(registry):
    with pytest.raises(ValueError, match="models:/name@alias"):
        load_alias("models:/sentiment/1")


def test_a_logged_version_holds_its_sources_only(tmp_path, monkeypatch):
    """Lesson 07 lists a version's files: exactly these, with or without PYTHONDONTWRITEBYTECODE.

    ``log_model`` imports the model's code from the folder it uploads; without the course's guard
    Python writes ``__pycache__/sentiment_model.cpython-311.pyc`` into the version (a fresh clone
    logged 9 files where the stored output shows 8)."""
    from course_apps.sentiment_training import SHIPPED_HEAD, log_head_version

    previous = mlflow.get_tracking_uri()
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as in a fresh shell
    try:
        make_registry(tmp_path)
        number = log_head_version(SHIPPED_HEAD, {"l2": 0.0}, run_name="sources-only")
        source = mlflow.MlflowClient().get_model_version("sentiment", number).source
    finally:
        mlflow.set_tracking_uri(previous)
    folder = tmp_path / "artifacts" / "models" / source.removeprefix("models:/")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [
        "artifacts/MLmodel",
        "artifacts/artifacts/head.safetensors",
        "artifacts/conda.yaml",
        "artifacts/input_example.json",
        "artifacts/python_env.yaml",
        "artifacts/requirements.txt",
        "artifacts/sentiment_model.py",
        "artifacts/serving_input_example.json",
    ], files
    assert sys.dont_write_bytecode is False, "logging must give the interpreter's setting back"
