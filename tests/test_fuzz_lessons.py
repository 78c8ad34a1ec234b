"""No request body gets a 5xx from a lesson's HTTP app, and the app keeps serving.

Each test builds a lesson's app from the solution notebook's cells tagged ``app-code`` (no copy
of the code here), deploys it on one live Serve cluster shared by this module, and POSTs a few
hundred generated bodies to it with hypothesis (tests/http_fuzz.py). To add a lesson: tag the
cells that define its app, then add a test: ``with lesson_app(notebook, name, build) as url:`` and fuzz it.
Starts Ray: on a shared machine run it under the lock (``flock /tmp/ray.lock pytest ...``).
"""

from __future__ import annotations

import types
from typing import Any

import pytest
from http_fuzz import fuzz_http_app
from lesson_code import deploy, lesson_app
from ray import serve

import servekit
from servekit.models import ModelUnavailable

SENTIMENT = {"text": "I love this course!"}


def sentiment_app(lesson: types.ModuleType) -> Any:
    return lesson.SentimentAnalyzer.bind(servekit.resolve_model("sentiment").location)


def test_lesson01_sentiment_app_never_answers_5xx(serve_cluster):
    with lesson_app("solutions/01_first_deployment.ipynb", "fuzz01", sentiment_app) as url:
        print("lesson 01:", fuzz_http_app(url, good=SENTIMENT, max_examples=300))


def test_lesson02_composition_app_never_answers_5xx(serve_cluster):
    try:
        translation = servekit.resolve_model("translation")
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    summarization = servekit.resolve_model("summarization")

    def build(lesson: types.ModuleType) -> Any:
        return lesson.TextProcessor.bind(
            lesson.Summarizer.bind(summarization),
            lesson.Translator.bind(translation),
            engines={"summarizer": summarization.backend, "translator": translation.backend},
        )

    with lesson_app("solutions/02_composition.ipynb", "fuzz02", build) as url:
        good = {"text": "The library opened a new room. It has two hundred seats.", "sentences": 1}
        print("lesson 02:", fuzz_http_app(url, good=good, max_examples=300))


def test_lesson03_worker_app_never_answers_5xx(serve_cluster):
    # work_ms=0: generated bodies that keep a valid work_ms then sleep at most 1 s, rarely
    def build(lesson: types.ModuleType) -> Any:
        return lesson.Worker.options(ray_actor_options={"num_cpus": 0.5}).bind()

    with lesson_app("solutions/03_scaling.ipynb", "fuzz03", build) as url:
        print("lesson 03:", fuzz_http_app(url, good={"work_ms": 0}, max_examples=300))


def test_lesson04_sentiment_app_never_answers_5xx(serve_cluster):
    # no GPU here: the replica runs on the CPU
    with lesson_app("solutions/04_resources_gpus.ipynb", "fuzz04", sentiment_app) as url:
        print("lesson 04:", fuzz_http_app(url, good=SENTIMENT, max_examples=300))


def test_lesson05_batching_app_never_answers_5xx(serve_cluster):
    with lesson_app("solutions/05_batching.ipynb", "fuzz05", sentiment_app) as url:
        print("lesson 05 (batched path):", fuzz_http_app(url, good=SENTIMENT, max_examples=300))
        unbatched = fuzz_http_app(f"{url}?mode=unbatched", good={"text": "Fine."}, max_examples=50)
        print("lesson 05 (unbatched path):", unbatched)


def test_lesson07_registry_app_never_answers_5xx(serve_cluster, tmp_path):
    from lesson07_registry import log_version, make_registry
    from mlflow import MlflowClient

    from course_apps.sentiment_registry import SentimentAnalyzer

    tracking_uri = make_registry(tmp_path / "registry")
    MlflowClient().set_registered_model_alias("sentiment", "champion", log_version())
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    try:  # the lesson's module, deployed as the lesson deploys it (replica env through runtime_env)
        app = SentimentAnalyzer.options(ray_actor_options={"num_cpus": 1, "runtime_env": {"env_vars": env}})
        url = deploy(app.bind(), "fuzz07")
        report = fuzz_http_app(url, good={"text": "I love this course!"}, max_examples=300)
        print("lesson 07:", report)
    finally:
        serve.delete("fuzz07")
