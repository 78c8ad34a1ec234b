"""DRAFT of lesson 11's app-code cells (to become cells tagged app-code in solutions/11_llm_serving.ipynb).

An OpenAI-compatible chat service on Ray Serve: a model deployment whose generator method streams
tokens through a DeploymentHandle, and a FastAPI ingress with GET /v1/models and
POST /v1/chat/completions (JSON, or server-sent events ending in ``data: [DONE]``), answers built
from the ``openai`` package's own types.
"""

import asyncio
import json
import time
import uuid
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from ray import serve
from ray.serve.handle import DeploymentHandle

MODEL_NAME = "smollm2-135m-instruct"
MAX_TOKENS = 256  # the most tokens one answer may ask for
CONTEXT_WINDOW = 2048  # prompt + answer; the model knows 8192, the laptop serves less
REQUEST_TIMEOUT_S = 60.0
MAX_BODY_BYTES = 64 * 1024


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: Annotated[StrictStr, Field(min_length=1, max_length=16_000)]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: StrictStr
    messages: list[Message] = Field(min_length=1, max_length=64)
    max_tokens: StrictInt = Field(64, ge=1, le=MAX_TOKENS)
    stream: StrictBool = False
    temperature: float = Field(0.0, ge=0.0, le=2.0, strict=True)
    seed: StrictInt = Field(0, ge=0, le=2**32 - 1)


class PromptTooLong(ValueError):
    def __init__(self, prompt_tokens: int, max_tokens: int, window: int):
        super().__init__(prompt_tokens, max_tokens, window)  # all args: Ray pickles it for the caller
        self.message = (
            f"the prompt has {prompt_tokens} tokens and asks for {max_tokens} more; "
            f"this model's context window is {window} tokens"
        )

    def __str__(self) -> str:
        return self.message


@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=8)
class LLMServer:
    def __init__(self, model_dir: str):
        import ray

        from course_apps.chat_engine import ChatEngine

        cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)) or 1
        self.engine = ChatEngine(model_dir, threads=cpus)  # threads matched to the replica's CPUs
        self.stats = {"active": 0, "tokens": 0, "finished": 0, "cancelled": 0}

    def get_stats(self) -> dict:
        return dict(self.stats)

    async def generate(self, messages: list[dict], max_tokens: int, temperature: float = 0.0, seed: int = 0):
        """An async generator: first {"prompt_tokens": n}, then one {"text", "finish_reason"} per token."""
        prompt = self.engine.encode(messages)
        if len(prompt) + max_tokens > CONTEXT_WINDOW:
            raise PromptTooLong(len(prompt), max_tokens, CONTEXT_WINDOW)
        yield {"prompt_tokens": len(prompt)}
        steps = self.engine.stream(prompt, max_tokens, temperature, seed)
        self.stats["active"] += 1
        done = False
        try:
            while (delta := await asyncio.to_thread(next, steps, None)) is not None:
                self.stats["tokens"] += 1
                yield {"text": delta.text, "finish_reason": delta.finish_reason}
            done = True
        finally:  # a cancelled request (client gone, timeout) stops here: no more forward passes
            self.stats["active"] -= 1
            self.stats["finished" if done else "cancelled"] += 1

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.2)
    async def complete_batched(self, prompts: list[list[dict]]) -> list[dict]:
        ids = [self.engine.encode(m) for m in prompts]
        answers = await asyncio.to_thread(self.engine.generate_batch, ids, 32)
        return [{"text": text, "tokens": n, "batch_size": len(prompts)} for text, n in answers]


def openai_error(status: int, message: str, param: str | None = None) -> JSONResponse:
    """OpenAI's error shape: the official client raises BadRequestError etc. with this message."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return JSONResponse({"error": error}, status)


api = FastAPI(title="OpenAI-compatible chat (Ray Serve course, lesson 11)", max_body_size=MAX_BODY_BYTES)


@api.exception_handler(RequestValidationError)
async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    where = (
        ".".join(str(p) for p in first["loc"][1:] if isinstance(p, str | int))
        if len(first["loc"]) > 1
        else ""
    )
    where = "" if first["type"] == "json_invalid" else where
    detail = jsonable_encoder({k: v for k, v in first.items() if k in ("type", "msg")})
    return openai_error(400, json.dumps(f"{where}: {detail['msg']}", ensure_ascii=True)[1:-1], where or None)


@api.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return openai_error(exc.status_code, str(exc.detail))


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32)
@serve.ingress(api)
class OpenAIServer:
    def __init__(self, llm: DeploymentHandle, request_timeout_s: float = REQUEST_TIMEOUT_S):
        self.llm, self.timeout_s = llm, request_timeout_s

    @api.get("/v1/models")
    async def models(self) -> dict:
        model = Model(id=MODEL_NAME, created=0, object="model", owned_by="ray-serve-course")
        return {"object": "list", "data": [model.model_dump(exclude_none=True)]}

    @api.post("/v1/chat/completions")
    async def chat(self, req: ChatRequest):
        if req.model != MODEL_NAME:
            raise HTTPException(404, f"model {req.model!r} not found; GET /v1/models lists {MODEL_NAME!r}")
        messages = [m.model_dump() for m in req.messages]
        tokens = self.llm.options(stream=True).generate.remote(
            messages, req.max_tokens, req.temperature, req.seed
        )
        try:  # the first item says the prompt fits: errors before it are still a proper HTTP answer
            first = await asyncio.wait_for(tokens.__anext__(), self.timeout_s)
        except PromptTooLong as exc:
            raise HTTPException(400, exc.message) from exc
        deadline = time.monotonic() + self.timeout_s
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            events = self._events(tokens, rid, created, deadline)
            return StreamingResponse(events, media_type="text/event-stream")
        return await self._complete(tokens, first["prompt_tokens"], rid, created, deadline)

    async def _complete(self, tokens, prompt_tokens, rid, created, deadline) -> dict:
        parts, finish, n = [], "length", 0
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + deadline - time.monotonic()):
                async for delta in tokens:
                    parts.append(delta["text"])
                    n += 1
                    finish = delta["finish_reason"] or finish
        except TimeoutError:
            tokens.cancel()
            raise HTTPException(504, f"the answer took longer than {self.timeout_s:g} s") from None
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
        message = {"role": "assistant", "content": "".join(parts)}
        choice = {"index": 0, "message": message, "finish_reason": finish}
        body = dict(id=rid, object="chat.completion", created=created, model=MODEL_NAME, choices=[choice])
        return ChatCompletion(**body, usage=usage).model_dump(exclude_none=True)

    async def _events(self, tokens, rid, created, deadline):
        def event(delta: dict, finish: str | None) -> str:
            chunk = ChatCompletionChunk(
                id=rid, object="chat.completion.chunk", created=created, model=MODEL_NAME,
                choices=[{"index": 0, "delta": delta, "finish_reason": finish}],
            )  # fmt: skip
            return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"

        yield event({"role": "assistant", "content": ""}, None)
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + deadline - time.monotonic()):
                async for delta in tokens:
                    yield event({"content": delta["text"]}, delta["finish_reason"])
        except TimeoutError:
            tokens.cancel()
            error = {"message": f"the answer took longer than {self.timeout_s:g} s", "type": "timeout"}
            yield f"data: {json.dumps({'error': error})}\n\n"
        yield "data: [DONE]\n\n"
