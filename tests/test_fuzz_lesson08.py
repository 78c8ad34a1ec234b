"""No request to lesson 08's router app gets a 5xx, and the app keeps serving.

The lesson's module (course_apps/sentiment_ab.py) is deployed as the lesson deploys it, against a
real SQLite registry with two versions (tests/lesson07_registry.py), with a 50/50 split and a
shadow, on a live Serve cluster. Hypothesis then POSTs generated bodies (tests/http_fuzz.py).
Starts Ray: on a shared machine run it under the lock (``flock /tmp/ray.lock pytest ...``).
"""

from __future__ import annotations

import pytest
from http_fuzz import fuzz_http_app
from ray import serve

import servekit

GOOD = {"text": "I love this course!", "user_id": "ada"}


@pytest.fixture(scope="module")
def router_url(serve_cluster, tmp_path_factory):
    from lesson07_registry import log_version, make_registry

    from course_apps.sentiment_ab import SentimentVersions, VariantRouter

    tracking_uri = make_registry(tmp_path_factory.mktemp("registry"))
    log_version(), log_version()
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    versions = SentimentVersions.options(ray_actor_options={"num_cpus": 1, "runtime_env": {"env_vars": env}})
    split = {"weights": {"1": 50, "2": 50}, "shadow": {"version": "2", "share": 0.5}}
    app = VariantRouter.options(user_config=split).bind(versions.bind())
    serve.run(app, name="fuzz08", route_prefix="/fuzz08")
    url = servekit.serve_url("/fuzz08")
    servekit.wait_until_healthy("fuzz08", url)
    try:
        yield url
    finally:
        serve.delete("fuzz08")


def test_lesson08_router_never_answers_5xx(router_url):
    print("lesson 08 router:", fuzz_http_app(router_url, good=GOOD, max_examples=300))
