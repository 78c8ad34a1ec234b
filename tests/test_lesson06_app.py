"""Lesson 06's Sentiment API tested without a Ray cluster, the way the lesson recommends.

The app's code is not copied here: it is read from the cells tagged ``app-code`` in
solutions/06_fastapi_ingress.ipynb, so the test always checks what the lesson teaches.

Two layers, neither starts Ray:
* the routes' logic, run by Serve's local testing mode (``serve.run(app, _local_testing_mode=True)``):
  every deployment runs in this process, and the ingress's route methods are called through
  the handle ``serve.run`` returns, with the real model behind a second, in-process handle;
* the HTTP layer FastAPI handles before a route runs (OpenAPI schema, body-size limit,
  malformed JSON), through FastAPI's ``TestClient``, plus the request models behind every 422.
"""

from __future__ import annotations

import asyncio
import json
import sys
import types

import nbformat
import pytest
from pydantic import ValidationError

from servekit import resolve_model
from servekit.paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "solutions" / "06_fastapi_ingress.ipynb"
MODULE = "lesson06_app"


def app_code() -> str:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "app-code" in c.metadata.get("tags", [])]
    assert len(cells) >= 3, "the lesson defines its app in cells tagged app-code (schemas, model, ingress)"
    return "\n\n".join(cells)


@pytest.fixture(scope="module")
def lesson():
    """The lesson's app code, run as a module of its own (so pickling finds its classes)."""
    module = types.ModuleType(MODULE)
    sys.modules[MODULE] = module
    exec(compile(app_code(), str(NOTEBOOK), "exec"), module.__dict__)
    yield module
    sys.modules.pop(MODULE, None)


@pytest.fixture(scope="module")
def handle(lesson):
    """The ingress deployment, run in this process by Serve's local testing mode."""
    import ray
    from ray import serve
    from ray.serve import batching

    # Ray 2.60's local testing mode has no replica context, and @serve.batch asks for one when
    # its queue starts (only to log a warning about max_ongoing_requests): without this stub the
    # /predict route, whose helper is batched, fails with "get_replica_context() may only be
    # called from within a Ray Serve deployment". Nothing else is replaced. The follow-ups of
    # https://github.com/ray-project/ray/pull/48477 (local testing mode) list get_replica_context;
    # the stub replaces a private method, so a Ray upgrade that renames it fails here, loudly.
    private = "_warn_if_max_batch_size_exceeds_max_ongoing_requests"
    assert hasattr(batching._BatchQueue, private), f"Ray renamed {private}: update this stub"
    patch = pytest.MonkeyPatch()
    patch.setattr(batching._BatchQueue, private, lambda self: None)
    app = lesson.SentimentAPI.bind(lesson.SentimentAnalyzer.bind(resolve_model("sentiment").location))
    yield serve.run(app, name="lesson06-unit", _local_testing_mode=True)
    patch.undo()
    assert not ray.is_initialized(), "local testing mode must not start a Ray cluster"


# --- the routes' logic, through the in-process handle -------------------------------------------


def test_health_and_model_info(lesson, handle):
    assert handle.health.remote().result() == {"status": "ok"}
    info = handle.model_info.remote().result()
    assert isinstance(info, lesson.ModelInfo)
    assert info.labels == ["negative", "neutral", "positive"]
    assert (info.max_text_chars, info.max_batch, info.max_body_bytes) == (2000, 32, 64 * 1024)


def test_predict_calls_the_model_deployment(lesson, handle):
    answer = handle.predict.remote(lesson.TextIn(text="I love this course!")).result()
    assert isinstance(answer, lesson.Prediction)
    assert answer.label == "positive" == max(answer.scores, key=answer.scores.get)
    assert set(answer.scores) == {"negative", "neutral", "positive"}
    assert abs(sum(answer.scores.values()) - 1) < 0.01


def test_batch_keeps_order(lesson, handle):
    texts = ["I love this course!", "Worst airline ever. Lost my bag.", "I love this course!"]
    out = handle.predict_batch.remote(lesson.BatchIn(texts=texts)).result()
    labels = [p.label for p in out.predictions]
    assert labels == ["positive", "negative", "positive"]


def test_model_errors_become_422_with_a_message_not_a_traceback(lesson, handle):
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as caught:
        handle.predict_batch.remote(lesson.BatchIn(texts=["fine", "🙂🙂🙂"])).result()
    assert caught.value.status_code == 422
    assert caught.value.detail.startswith("text 1 has no word the model knows")
    assert "Traceback" not in caught.value.detail and "pid=" not in caught.value.detail


def test_stream_yields_one_json_line_per_text_in_order(lesson, handle):
    texts = ["I love this course!", "Worst airline ever. Lost my bag.", "The meeting is at 3pm."]
    response = handle.predict_stream.remote(lesson.BatchIn(texts=texts)).result()
    assert response.media_type == "application/x-ndjson"

    async def read_lines():
        return [json.loads(chunk) async for chunk in response.body_iterator]

    lines = asyncio.run(read_lines())
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert [line["text"] for line in lines] == texts
    assert lines[0]["label"] == "positive" and lines[1]["label"] == "negative"


def test_stream_reports_an_unreadable_text_in_its_line_not_by_cutting_the_stream(lesson, handle):
    texts = ["I love this course!", "🙂🙂🙂", "Worst airline ever."]
    response = handle.predict_stream.remote(lesson.BatchIn(texts=texts)).result()

    async def read_lines():
        return [json.loads(chunk) async for chunk in response.body_iterator]

    lines = asyncio.run(read_lines())
    assert [line["index"] for line in lines] == [0, 1, 2], "the stream goes on after the error"
    assert lines[1]["status"] == 422 and lines[1]["error"].startswith("text 1 has no word the model knows")
    assert lines[0]["label"] == "positive" and lines[2]["label"] == "negative"


# --- the request models (FastAPI answers 422 with exactly these errors) ------------------------


@pytest.mark.parametrize(
    "model, body, error",
    [
        ("TextIn", {}, "missing"),
        ("TextIn", {"text": 42}, "string_type"),
        ("TextIn", {"text": "   "}, "string_too_short"),
        ("TextIn", {"text": "a" * 2001}, "string_too_long"),
        ("TextIn", {"text": "hi", "lang": "en"}, "extra_forbidden"),
        ("BatchIn", {"texts": []}, "too_short"),
        ("BatchIn", {"texts": ["ok"] * 33}, "too_long"),
        ("BatchIn", {"texts": ["ok", ""]}, "string_too_short"),
        ("TextIn", {"text": "\ud800"}, "string_unicode"),  # a lone surrogate: valid JSON, not text
        ("BatchIn", {"texts": ["ok", "a\udfffb"]}, "string_unicode"),
    ],
)
def test_request_models_reject_bad_input(lesson, model, body, error):
    with pytest.raises(ValidationError) as caught:
        getattr(lesson, model).model_validate(body)
    assert error in {e["type"] for e in caught.value.errors()}


# --- the HTTP layer, with FastAPI's TestClient (no Serve, no model) ----------------------------


@pytest.fixture(scope="module")
def client(lesson):
    """FastAPI's TestClient on the lesson's app. Serve resolves a route's ``self`` from the replica
    context; a stand-in (no instance) lets FastAPI validate requests here. No route method runs."""
    from fastapi.testclient import TestClient
    from ray import serve

    patch = pytest.MonkeyPatch()
    patch.setattr(serve, "get_replica_context", lambda: types.SimpleNamespace(servable_object=None))
    yield TestClient(lesson.api, raise_server_exceptions=False)
    patch.undo()


def test_openapi_schema_documents_routes_and_limits(client):
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/model", "/predict", "/predict/batch", "/predict/stream"}
    assert set(schema["paths"]["/predict"]) == {"post"}
    components = schema["components"]["schemas"]
    assert {"TextIn", "BatchIn", "Prediction", "BatchOut", "ModelInfo"} <= set(components)
    assert components["TextIn"]["properties"]["text"]["maxLength"] == 2000
    assert components["BatchIn"]["properties"]["texts"]["maxItems"] == 32
    ok = schema["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Prediction"}
    assert "422" in schema["paths"]["/predict"]["post"]["responses"]


def test_docs_page_is_served(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text


def test_body_over_the_limit_gets_413_json_with_or_without_content_length(client):
    big = b'{"text": "' + b"a" * 70_000 + b'"}'
    declared = client.post("/predict", content=big, headers={"Content-Type": "application/json"})
    chunked = client.post(
        "/predict", content=iter([big[:10], big[10:]]), headers={"Content-Type": "application/json"}
    )
    # FastAPI's own limit (max_body_size): plain text when the declared length is too big, JSON otherwise
    assert (declared.status_code, declared.text) == (413, "Content Too Large")
    assert (chunked.status_code, chunked.json()) == (413, {"detail": "Content Too Large"})
    assert "content-length" not in chunked.request.headers, "the second request really was chunked"


def test_malformed_json_gets_422(client):
    r = client.post("/predict", content=b'{"text": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b'{"text": "\\ud800"}', "application/json"),  # a lone surrogate, as a JSON escape
        (b'{"texts": ["ok", "\\udc00"]}', "application/json"),
        (b'{"txt": "\\ud800", "\\udfff": 1}', "application/json"),  # in a value FastAPI echoes, in a name
        (b"\xff\xfe not UTF-8", "text/plain"),  # raw bytes reach pydantic as they are
        (b"\x80", None),
    ],
)
def test_input_that_is_not_text_gets_422_with_a_message_not_500(client, body, content_type):
    """FastAPI's own 422 handler echoes the input as UTF-8 JSON and crashed on these (a 500)."""
    from servekit import error_text

    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/predict", "/predict/batch", "/predict/stream"):
        r = client.post(path, content=body, headers=headers)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert error_text(r) and "input" not in r.json()["detail"][0]
    r = client.post("/predict", content=b'{"text": "\\ud800"}', headers={"Content-Type": "application/json"})
    assert r.json()["detail"][0]["type"] == "string_unicode"
