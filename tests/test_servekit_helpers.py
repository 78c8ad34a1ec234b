"""servekit.wait_for, servekit.probe and servekit.aiohttp_json_sender against a real local HTTP server."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

import servekit
from conftest import QuietHandler, local_http_server


class _Echo(QuietHandler):
    """Answers 200 {"got": body} for a JSON object with 'text', else 422 {"error": ...}."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
            status, answer = (
                (200, {"got": body})
                if isinstance(body, dict) and "text" in body
                else (422, {"error": "missing field 'text'"})
            )
        except ValueError:
            status, answer = 400, {"error": "not JSON"}
        self.reply(status, json.dumps(answer).encode())


@pytest.fixture(scope="module")
def url():
    with local_http_server(_Echo) as url:
        yield url


def test_wait_for_returns_the_first_truthy_value():
    counter = itertools.count()
    assert (
        servekit.wait_for(lambda: next(counter) >= 3 and "ready", timeout_s=5, what="counter", poll_s=0.01)
        == "ready"
    )


def test_wait_for_names_what_it_waited_for_and_the_last_value():
    with pytest.raises(servekit.WaitTimeout, match=r"replicas RUNNING: not within 0.1 s \(last seen: 0\)"):
        servekit.wait_for(lambda: 0, timeout_s=0.1, what="replicas RUNNING", poll_s=0.02)


def test_wait_for_rejects_a_nonpositive_timeout():
    with pytest.raises(ValueError):
        servekit.wait_for(lambda: True, timeout_s=0, what="x")


def test_probe_returns_each_answer_and_prints_the_error(url, capsys):
    answers = servekit.probe(
        url,
        {
            "good": dict(json={"text": "hi"}),
            "missing field": dict(json={"txt": "hi"}),
            "not JSON": dict(data="text=hi"),
        },
    )
    assert {case: r.status_code for case, r in answers.items()} == {
        "good": 200,
        "missing field": 422,
        "not JSON": 400,
    }
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "missing field  422  missing field 'text'"
    assert lines[2] == "not JSON       400  not JSON"


def test_error_text_reads_fastapi_detail_and_plain_bodies():
    import requests

    def response(status: int, body: bytes) -> requests.Response:
        r = requests.Response()
        r.status_code, r._content = status, body
        return r

    assert servekit.error_text(response(422, b'{"detail": [{"msg": "Field required"}]}')) == "Field required"
    two = b'{"detail": [{"loc": ["body", "text"], "msg": "Field required"}, {"msg": "Extra"}]}'
    assert servekit.error_text(response(422, two)) == "Field required (body.text) (+1 more)"
    assert servekit.error_text(response(413, b'{"detail": "Content Too Large"}')) == "Content Too Large"
    assert servekit.error_text(response(500, b"Internal Server Error")) == "Internal Server Error"
    assert servekit.error_text(response(422, b'["x"]')) == "['x']"


def test_aiohttp_json_sender_drives_run_load_async(url):
    async def run():
        async with servekit.aiohttp_json_sender(
            url, lambda i: {"text": str(i)} if i % 2 else {"txt": ""}
        ) as send:
            return await servekit.run_load_async(send, total=20, concurrency=4, progress=False)

    report = asyncio.run(run())
    assert report.total == 20
    assert report.outcomes == {200: 10, 422: 10}
    assert report.errors == 10


def test_aiohttp_json_sender_hands_each_answer_to_on_json(url):
    answers = {}

    async def run():
        async with servekit.aiohttp_json_sender(
            url, lambda i: {"text": str(i)}, on_json=lambda i, body: answers.__setitem__(i, body)
        ) as send:
            return await servekit.run_load_async(send, total=6, concurrency=2, progress=False)

    report = asyncio.run(run())
    assert sorted(report.indices) == list(range(6))
    assert sorted(answers) == list(range(6)) and all(isinstance(body, dict) for body in answers.values())


def test_show_source_prints_the_named_parts_with_their_file_and_lines(capsys):
    from course_apps import sentiment_registry

    analyzer = sentiment_registry.SentimentAnalyzer.func_or_class  # the class behind the deployment
    servekit.show_source(sentiment_registry.load_alias, analyzer.reconfigure)
    out = capsys.readouterr().out
    first, second = out.split("\n\n# ")
    path = servekit.REPO_ROOT / "course_apps" / "sentiment_registry.py"
    lines = path.read_text().splitlines()
    for block in (first.removeprefix("# "), second):
        head, *body = block.rstrip("\n").split("\n")
        where, _, span = head.partition(", lines ")
        start, end = map(int, span.split("-"))
        assert where == "course_apps/sentiment_registry.py" and end - start + 1 == len(body)
        assert [line.strip() for line in lines[start - 1 : end]] == [line.strip() for line in body]
    assert body[0] == "async def reconfigure(self, config: dict) -> None:", "a method is dedented"
    assert "class SentimentAnalyzer" not in out, "only the named parts, not the whole module"


def test_source_of_a_deployment_is_its_class_with_the_decorator():
    from course_apps import sentiment_registry

    text = servekit.source.source_of(sentiment_registry.SentimentAnalyzer)
    assert text.splitlines()[1] == "@serve.deployment(" and "class SentimentAnalyzer:" in text


class FakeServe:
    """serve.status() / serve.delete(): deleting the app lets the blocked serve.run return, as in Serve."""

    def __init__(self):
        import threading
        from types import SimpleNamespace as NS

        self.deleted = threading.Event()
        pending = NS(status="DEPLOYING", replica_states={"PENDING_ALLOCATION": 1})
        pending.message = "Deployment 'Ingress' has 1 replica that cannot be scheduled: needs {'CPU': 1.0}"
        self.app = NS(status="DEPLOYING", message="", deployments={"Ingress": pending})

    def status(self):
        from types import SimpleNamespace as NS

        return NS(applications={} if self.deleted.is_set() else {"api": self.app})

    def delete(self, name):
        self.deleted.set()


@pytest.mark.parametrize("named", ["api", "another-app"])  # a deploy function may deploy another name
def test_deploys_within_fails_with_the_reason_instead_of_hanging(monkeypatch, named):
    from ray import serve

    fake = FakeServe()
    monkeypatch.setattr(serve, "status", fake.status)
    monkeypatch.setattr(serve, "delete", fake.delete)

    def stuck_run():  # serve.run returns (with an error) once the app is deleted
        fake.deleted.wait(30)
        raise RuntimeError("Application 'api' was deleted")

    with pytest.raises(servekit.AppNotHealthy) as failed:
        servekit.deploys_within(stuck_run, named, timeout_s=0.2)
    assert fake.deleted.is_set(), "the stuck app is deleted, so serve.run returns"
    assert "did not return in 0 s" in str(failed.value) and "needs {'CPU': 1.0}" in str(failed.value)
    assert "app 'api': application status DEPLOYING" in str(failed.value)


def test_deploys_within_passes_on_what_deploy_returns_or_raises(monkeypatch):
    assert servekit.deploys_within(lambda: "handle", "api", timeout_s=5) == "handle"

    def broken():
        raise ValueError("bad options")

    with pytest.raises(ValueError, match="bad options"):
        servekit.deploys_within(broken, "api", timeout_s=5)
