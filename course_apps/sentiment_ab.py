"""Lesson 08's service: registered model versions side by side, behind a router that splits traffic.

Two deployments, one application (import path for configs: ``course_apps.sentiment_ab:app``):

* ``SentimentVersions`` holds the encoder once per replica and the small heads of any
  registered versions of ``models:/sentiment/<n>``, loaded on demand with
  ``@serve.multiplexed``: at most ``MAX_MODELS`` heads per replica, the least recently used
  out first. A request names its version as the *multiplexed model id* (``"1"``, ``"2"``,
  ...), set by the caller with ``handle.options(multiplexed_model_id="2")``.
* ``VariantRouter`` is the HTTP ingress. Its ``user_config`` holds the traffic split,
  ``{"weights": {"1": 90, "2": 10}, "shadow": {"version": "3", "share": 0.25}}``: each user id
  is hashed (SHA-256, the same in every process, machine and run) to a point in [0, 1) that
  falls in one version's slice, so a user keeps meeting the same version while the weights
  stay put. Slices are laid out in version order, so a growing canary (the newer, higher
  version) only ever adds users. ``shadow`` mirrors a share of requests to another version
  after the caller has its answer, and counts how often the two agree. A request can pin a
  version with the ``serve_multiplexed_model_id`` header.

The registry's address comes from the replica's environment (``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
from pathlib import Path

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_CHARS = 2000
MAX_USER_ID = 64
MAX_MODELS = 2  # heads per SentimentVersions replica
MAX_SHADOWS_IN_FLIGHT = 4  # beyond this, a mirrored request is skipped rather than queued
VERSION_ID = re.compile(r"[1-9][0-9]{0,5}")  # what a registry version number looks like


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def check_string(name: str, value, limit: int, too_long: int) -> JSONResponse | None:
    """The course's checks of one string field: type, empty, length, valid Unicode."""
    if not isinstance(value, str):
        return error(422, f"'{name}' must be a string, not {type(value).__name__}")
    if not value.strip():
        return error(422, f"'{name}' is empty")
    if len(value) > limit:
        return error(too_long, f"'{name}' has {len(value)} characters; the limit is {limit}")
    try:
        value.encode("utf-8")  # fails on a lone surrogate such as "\ud800", which JSON allows
    except UnicodeEncodeError:
        return error(422, f"'{name}' is not valid Unicode (it has a lone surrogate)")
    return None


async def read_body(request: Request, fields: tuple[str, ...]) -> dict | JSONResponse:
    """The JSON body as a dict with every field in ``fields``, or the course's 4xx."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a huge number, nested too deep
        shape = ", ".join(f'"{f}": "..."' for f in fields)
        return error(400, f"the body must be JSON like {{{shape}}}")
    for field in fields:
        if not isinstance(body, dict) or field not in body:
            return error(422, f"missing field '{field}'")
    return body


def bucket(key: str) -> float:
    """A point in [0, 1) from SHA-256: stable across processes, machines and runs.

    (Python's ``hash()`` of a string is salted per process: two replicas, or one replica after
    a restart, would send the same user to different versions.)
    """
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def assign(user_id: str, weights: dict[str, float]) -> str:
    """The version whose slice of [0, 1) holds the user's point; slices in numeric version order."""
    total = sum(weights.values())
    point = bucket(user_id) * total
    live = [v for v in sorted(weights, key=int) if weights[v] > 0]
    for version in live:
        point -= weights[version]
        if point < 0:
            return version
    return live[-1]  # only reached through rounding at the very top of the range


class Head:
    """One version's head (pooler + classifier tensors, 0.6 MB) as the multiplexer holds it."""

    def __init__(self, version: str, tensors: dict, on_unload):
        self.version, self.tensors, self._on_unload = version, tensors, on_unload

    def __del__(self):  # Serve calls it when it evicts the head (and Python may again at GC)
        if self._on_unload is not None:
            self._on_unload(self.version)
            self._on_unload = None


def download_head(model_name: str, version: str) -> dict:
    """The head's arrays (0.6 MB) of registered ``model_name`` version ``version``, not its encoder."""
    import mlflow
    from mlflow.models import Model
    from safetensors.numpy import load_file

    with tempfile.TemporaryDirectory() as folder:  # the version's files: MLmodel, code, head
        local = mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}", dst_path=folder)
        artifacts = Model.load(local).flavors["python_function"]["artifacts"]  # logged as {"head": file}
        return load_file(Path(local) / artifacts["head"]["path"])


@serve.deployment(ray_actor_options={"num_cpus": 0.75}, max_ongoing_requests=16)
class SentimentVersions:
    def __init__(self, model_name: str = "sentiment", encoder: bool = True):
        self.model_name, self.encoder = model_name, None
        if encoder:  # the 88 MB encoder, once per replica; without it the replica only holds heads
            from course_apps.sentiment_model import Encoder

            self.encoder = Encoder()
        self.loaded: list[str] = []  # versions held, least recently used first (as Serve's cache)
        self.evicted: list[str] = []
        self.replica = serve.get_replica_context().replica_id.unique_id

    def _unloaded(self, version: str) -> None:
        self.evicted.append(version)
        if version in self.loaded:
            self.loaded.remove(version)

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS)
    async def get_head(self, version: str) -> Head:
        """Serve calls this on a miss, after evicting the least recently used head if full."""
        arrays = await asyncio.to_thread(download_head, self.model_name, version)
        if self.encoder is not None:
            import torch

            arrays = {name: torch.from_numpy(a) for name, a in arrays.items()}
        return Head(version, arrays, self._unloaded)

    async def registered(self, version: str) -> bool:
        if version in self.loaded:
            return True
        if not VERSION_ID.fullmatch(version):
            return False
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            await asyncio.to_thread(MlflowClient().get_model_version, self.model_name, version)
        except MlflowException:
            return False
        return True

    async def predict(self, text: str) -> dict:
        """Classify one checked text with the version named by the request's multiplexed model id."""
        from course_apps.sentiment_model import LABELS, head_probabilities

        version = serve.get_multiplexed_model_id()
        if not await self.registered(version):  # checked first: a miss evicts a head before loading
            return {"error": f"no registered version {version[:20]!r} of model {self.model_name!r}"}
        if self.encoder is None:
            return {"error": "this replica holds heads only: it has no encoder to classify a text"}
        head = await self._use(version)
        probs = head_probabilities(head.tensors, self.encoder([text]))[0]
        return {
            "label": LABELS[int(probs.argmax())],
            "score": round(float(probs.max()), 3),
            "scores": {label: round(float(p), 3) for label, p in zip(LABELS, probs, strict=True)},
            "model_version": int(version),
            "replica": self.replica,
        }

    async def _use(self, version: str) -> Head:
        head = await self.get_head(version)  # a hit does not suspend: no request slips in between
        if version in self.loaded:
            self.loaded.remove(version)
        self.loaded.append(version)  # most recently used last, as in Serve's cache
        return head

    async def hold(self) -> dict:
        """Make sure this replica holds the request's version (a cache hit or a load); its cache()."""
        version = serve.get_multiplexed_model_id()
        if not await self.registered(version):
            return {"error": f"no registered version {version[:20]!r} of model {self.model_name!r}"}
        await self._use(version)
        return self.cache()

    def cache(self) -> dict:
        """Which replica this is, the heads it holds (least recently used first), those it evicted."""
        return {"replica": self.replica, "loaded": list(self.loaded), "evicted": list(self.evicted)}


def check_config(config: dict) -> tuple[dict[str, float], dict | None]:
    """Validate the router's ``user_config``; a bad one fails the deploy, not later requests."""
    weights = {str(v): float(w) for v, w in config["weights"].items()}
    if not weights or any(not VERSION_ID.fullmatch(v) or w < 0 for v, w in weights.items()):
        raise ValueError(f"weights must map version numbers to weights >= 0, not {config['weights']!r}")
    if sum(weights.values()) <= 0:
        raise ValueError("at least one weight must be positive")
    shadow = config.get("shadow")
    if shadow is not None and not (
        VERSION_ID.fullmatch(str(shadow["version"])) and 0 <= shadow["share"] <= 1
    ):
        raise ValueError(f"shadow must be {{'version': '<n>', 'share': 0..1}}, not {shadow!r}")
    return weights, shadow


@serve.deployment(
    ray_actor_options={"num_cpus": 0.25},
    max_ongoing_requests=64,
    user_config={"weights": {"1": 100}},
)
class VariantRouter:
    def __init__(self, versions: DeploymentHandle):
        self.versions = versions
        self.weights: dict[str, float] = {}
        self.shadow: dict | None = None
        self.shadowing: set[asyncio.Task] = set()
        self.mirror = {"mirrored": 0, "agreed": 0, "failed": 0, "skipped": 0}

    def reconfigure(self, config: dict) -> None:
        """Runs at start and at every config deploy with a changed ``user_config``: no restart."""
        weights, shadow = check_config(config)
        if shadow != self.shadow:  # a new shadow experiment starts its counts afresh
            self.mirror = dict.fromkeys(self.mirror, 0)
        self.weights, self.shadow = weights, shadow

    def traffic(self) -> dict:
        """The split in force, and the shadow's counts since it was set."""
        return {"weights": self.weights, "shadow": self.shadow, **self.mirror}

    async def _mirror(self, version: str, text: str, label: str) -> None:
        try:
            answer = await self.versions.options(multiplexed_model_id=version).predict.remote(text)
            self.mirror["mirrored"] += 1
            self.mirror["agreed"] += answer["label"] == label
        except Exception:  # a failing shadow must never touch the caller
            self.mirror["failed"] += 1

    def _maybe_mirror(self, user_id: str, text: str, answer: dict) -> None:
        shadow = self.shadow
        if shadow is None or bucket(f"shadow:{user_id}:{text}") >= shadow["share"]:
            return
        if len(self.shadowing) >= MAX_SHADOWS_IN_FLIGHT:
            self.mirror["skipped"] += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._mirror(str(shadow["version"]), text, answer["label"])
        )
        self.shadowing.add(task)  # keep a reference until it is done
        task.add_done_callback(self.shadowing.discard)

    async def __call__(self, request: Request):
        body = await read_body(request, ("text", "user_id"))
        if isinstance(body, JSONResponse):
            return body
        problem = check_string("text", body["text"], MAX_CHARS, 413) or check_string(
            "user_id", body["user_id"], MAX_USER_ID, 422
        )
        if problem:
            return problem
        # A request may pin a version with the serve_multiplexed_model_id header (QA, debugging);
        # otherwise the user's hash picks one by weight. HTTP's optional whitespace (SP, HTAB) is not
        # part of a header's value, but Serve's HTTP server (uvicorn with httptools) strips it only
        # in front: "2 " pins version 2, and a blank header pins nothing.
        pinned = serve.get_multiplexed_model_id().strip(" \t")
        version = pinned or assign(body["user_id"], self.weights)
        answer = await self.versions.options(multiplexed_model_id=version).predict.remote(body["text"])
        if "error" in answer:  # only a pinned version can be unknown: a client error
            return error(404, answer["error"])
        if not pinned:
            self._maybe_mirror(body["user_id"], body["text"], answer)  # after the answer: no wait for it
        return {k: answer[k] for k in ("label", "score", "scores", "model_version")}


app = VariantRouter.bind(SentimentVersions.bind())
# Heads only, no encoder (about a fifth of the memory): lesson 08 watches Serve route among two of these.
heads_app = SentimentVersions.options(ray_actor_options={"num_cpus": 0.25}).bind(encoder=False)
