"""Lesson 09's production service: the course's sentiment model behind a FastAPI ingress.

What makes it a service rather than a demo:

* an **API key** checked on every route but ``/health`` (``X-API-Key``; 401 without the right
  one). The key is read from a file whose path comes in the config (``api_key_file``), so the
  key itself never appears in ``serve config`` output, in logs or in the repository;
* a custom **health check** (``check_health``) that Serve calls every ``health_check_period_s``;
  ``POST /admin/fail-health`` makes the replica that receives it fail its checks from then on,
  for fault drills;
* custom **metrics** (``ray.serve.metrics``): a counter of answers by label and status, and a
  histogram of model latency, exported with Serve's own on each node's Prometheus endpoint;
* **in-place configuration** through ``user_config`` (``reconfigure``): ``config_version`` is
  reported in every answer, so a client sees exactly when a config deploy reached its replica;
* logs through Serve's ``logging_config`` (the config file asks for JSON).

Bad input gets the course's 4xx answers ``{"error": message}``; nothing a client sends may cause
a 5xx. Import paths for configs: ``course_apps.sentiment_service:app`` (the service) and
``course_apps.sentiment_service:slow_app`` (a stand-in for a slow model, for backpressure drills).
"""

import asyncio
import hmac
import json
import logging
import os
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.metrics import Counter, Histogram

MAX_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024
logger = logging.getLogger("ray.serve")
# validate() refuses a body over MAX_BODY_BYTES with a JSON 413 after reading it. FastAPI's max_body_size
# would refuse it unread, but answers in plain text, against the course's JSON 4xx rule (open: review T13).
api = FastAPI(title="Sentiment service", version="1.0")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def validate(body: bytes) -> tuple[str | None, JSONResponse | None]:
    """The course's input rules: (text, None) for a good body, (None, a 4xx answer) otherwise."""
    if len(body) > MAX_BODY_BYTES:
        return None, error(413, f"the body has {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a huge number, nested too deep
        return None, error(400, 'the body must be JSON like {"text": "..."}')
    if not isinstance(parsed, dict) or "text" not in parsed:
        return None, error(422, "missing field 'text'")
    text = parsed["text"]
    if not isinstance(text, str):
        return None, error(422, f"'text' must be a string, not {type(text).__name__}")
    if not text.strip():
        return None, error(422, "'text' is empty")
    if len(text) > MAX_CHARS:
        return None, error(413, f"'text' has {len(text)} characters; the limit is {MAX_CHARS}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800", which JSON allows
        return None, error(422, "'text' is not valid Unicode (it has a lone surrogate)")
    return text, None


@serve.deployment(
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=8,
    health_check_period_s=1,
    health_check_timeout_s=2,
    user_config={"config_version": 1},
)
@serve.ingress(api)
class SentimentAnalyzer:
    def __init__(self, model_dir: str | None = None, api_key_file: str | None = None):
        from transformers import pipeline  # imported in the replica's process

        if model_dir is None:  # the course's offline model (or the one SERVEKIT_SENTIMENT_MODEL names)
            from servekit.models import resolve_model

            model_dir = resolve_model("sentiment").location
        self.classifier = pipeline("text-classification", model=model_dir, device=-1)
        key_file = api_key_file or os.environ["SENTIMENT_API_KEY_FILE"]  # set in the config's runtime_env
        self.api_key = Path(key_file).read_text().strip()
        self.config_version = 0
        self.healthy = True
        self.answers = Counter(
            "sentiment_answers",
            description="Answers sent, by label and HTTP status.",
            tag_keys=("label", "status"),
        )
        self.model_seconds = Histogram(
            "sentiment_model_seconds",
            description="Time the model took for one text.",
            boundaries=[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
        )

    def reconfigure(self, config: dict) -> None:
        """Runs at start and whenever a config deploy brings a different ``user_config``."""
        self.config_version = int(config.get("config_version", 0))
        logger.info("config_version is now %s", self.config_version)

    def check_health(self) -> None:
        """Serve calls this every health_check_period_s; raising marks one failed check."""
        if not self.healthy:
            raise RuntimeError("told to fail its health checks (POST /admin/fail-health)")

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("x-api-key", "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.api_key.encode())

    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok" if self.healthy else "failing"}

    @api.post("/predict")
    async def predict(self, request: Request):
        if not self.authorized(request):
            self.answers.inc(tags={"label": "", "status": "401"})
            return error(401, "missing or wrong API key (header X-API-Key)")
        text, problem = validate(await request.body())
        if problem is not None:
            self.answers.inc(tags={"label": "", "status": str(problem.status_code)})
            return problem
        start = time.perf_counter()
        (scores,) = await asyncio.to_thread(self.classifier, [text], top_k=None, truncation=True)
        self.model_seconds.observe(time.perf_counter() - start)
        best = max(scores, key=lambda s: s["score"])
        self.answers.inc(tags={"label": best["label"], "status": "200"})
        return {
            "label": best["label"],
            "score": round(best["score"], 3),
            "scores": {s["label"]: round(s["score"], 3) for s in scores},
            "config_version": self.config_version,
        }

    @api.post("/admin/fail-health")
    async def fail_health(self, request: Request):
        if not self.authorized(request):
            return error(401, "missing or wrong API key (header X-API-Key)")
        self.healthy = False
        context = serve.get_replica_context()
        return {"replica": context.replica_id.unique_id, "pid": os.getpid(), "healthy": False}


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=2, max_queued_requests=4)
class SlowEcho:
    """A stand-in for a slow model, for backpressure and timeout drills: sleeps ``?seconds=``
    (0 to 10, default 1) and says so. Two requests run at once; four more may wait in each
    caller's queue; the rest are refused at once."""

    async def __call__(self, request: Request) -> dict:
        try:
            seconds = min(max(float(request.query_params.get("seconds", 1)), 0.0), 10.0)
        except ValueError:
            seconds = 1.0
        if seconds != seconds:  # NaN
            seconds = 1.0
        await asyncio.sleep(seconds)
        return {"slept_s": seconds}


app = SentimentAnalyzer.bind()
slow_app = SlowEcho.bind()
