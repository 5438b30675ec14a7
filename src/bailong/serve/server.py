"""An OpenAI-compatible HTTP server for one merged model: /v1/chat/completions, /v1/completions and
/v1/models, streaming over server-sent events, on FastAPI + uvicorn.

It serves one model to one user at a time (a lock around generation): enough to point existing
OpenAI tools, the bench runner or a judge at a model on a laptop. For GPU throughput serve the same
merged folder with vLLM (see the README). Errors are OpenAI error objects with 4xx codes, and the
server keeps serving after them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bailong.config import BailongError
from bailong.serve.generate import Finished, Sampling, chat_ids, stream, text_ids

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _Request(BaseModel):
    # Unknown fields are ignored, as clients send many optional ones (user, metadata, ...).
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)  # not OpenAI's; vLLM's extension, which the bench sends
    repetition_penalty: float | None = Field(None, gt=0)  # likewise
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: dict | None = None
    stop: str | list[str] | None = None
    seed: int | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: only text can be served by a text model
            if any(part.get("type") != "text" for part in self.content):
                raise ApiError(400, "only text content parts are supported", param="messages")
            return "".join(part.get("text", "") for part in self.content)
        return self.content or ""


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0)


class CompletionRequest(_Request):
    prompt: str | list[str]


def build_app(model, tok, model_name: str, context_length: int, defaults: Sampling):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="bailong serve", version="1")
    lock = threading.Lock()  # one generation at a time: the model is not re-entrant on CPU
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = "invalid JSON in the request body" if first.get("type") == "json_invalid" else \
            f"{where or 'body'}: {first.get('msg', 'invalid request')}"
        return JSONResponse(ApiError(400, message, param=where).body, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(ApiError(exc.status_code, str(exc.detail), kind).body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _server_error(_request: Request, exc: Exception):
        log.exception("serve: request failed")
        return JSONResponse(ApiError(500, f"the server failed on this request: {type(exc).__name__}: {exc}", "server_error").body,
                            status_code=500)

    def model_card() -> dict:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "bailong", "context_length": context_length}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    def one_model(name: str) -> dict:
        _check_model(name, model_name)
        return model_card()

    def prepare(req: _Request, prompt_ids: list[int], max_tokens: int | None, param: str) -> Sampling:
        _check_model(req.model, model_name)
        if req.n != 1:
            raise ApiError(400, "only n=1 is supported", param="n")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        sampling = defaults.with_overrides(max_new_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                                           repetition_penalty=req.repetition_penalty, seed=req.seed)
        sampling = sampling.with_overrides(stop=tuple(s for s in stops if s) or None)
        if len(prompt_ids) + sampling.max_new_tokens > context_length:
            if len(prompt_ids) >= context_length or max_tokens is not None:
                raise ApiError(400, f"this model's maximum context length is {context_length} tokens; the prompt has "
                               f"{len(prompt_ids)} and {sampling.max_new_tokens} were requested for the completion",
                               param=param, code="context_length_exceeded")
            sampling = sampling.with_overrides(max_new_tokens=context_length - len(prompt_ids))  # default budget: fit it
        return sampling

    def respond(req: _Request, prompt_ids: list[int], sampling: Sampling, chat: bool):
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        kind = "chat.completion" if chat else "text_completion"
        if not req.stream:
            done = Finished()
            with lock:
                for _ in stream(model, tok, prompt_ids, sampling, done):
                    pass
            choice = {"index": 0, "finish_reason": done.finish_reason}
            choice |= {"message": {"role": "assistant", "content": done.text}} if chat else {"text": done.text, "logprobs": None}
            return {"id": rid, "object": kind, "created": int(time.time()), "model": model_name, "choices": [choice],
                    "usage": _usage(done)}
        usage = bool((req.stream_options or {}).get("include_usage"))
        return StreamingResponse(_sse(rid, kind + ".chunk" if chat else kind, chat, usage, prompt_ids, sampling),
                                 media_type="text/event-stream")

    def _sse(rid: str, kind: str, chat: bool, usage: bool, prompt_ids: list[int], sampling: Sampling) -> Iterator[str]:
        def chunk(delta: str | None, finish: str | None = None, role: bool = False, **extra) -> str:
            if chat:
                body = {"index": 0, "delta": ({"role": "assistant", "content": ""} if role else {"content": delta} if delta else {}),
                        "finish_reason": finish}
            else:
                body = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
            obj = {"id": rid, "object": kind, "created": int(time.time()), "model": model_name, "choices": [body], **extra}
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

        done = Finished()
        with lock:
            if chat:
                yield chunk(None, role=True)
            try:
                for piece in stream(model, tok, prompt_ids, sampling, done):
                    yield chunk(piece)
            except Exception as exc:  # headers are sent: report in-band, as OpenAI does
                log.exception("serve: generation failed")
                yield f"data: {json.dumps(ApiError(500, f'generation failed: {exc}', 'server_error').body)}\n\n"
                return
        yield chunk(None, done.finish_reason)
        if usage:
            obj = {"id": rid, "object": kind, "created": int(time.time()), "model": model_name, "choices": [], "usage": _usage(done)}
            yield f"data: {json.dumps(obj)}\n\n"
        yield "data: [DONE]\n\n"

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest):
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
        try:
            ids = chat_ids(tok, messages)
        except BailongError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        except Exception as exc:  # the chat template itself may refuse (e.g. roles out of order)
            raise ApiError(400, f"the chat template refused these messages: {exc}", param="messages") from None
        return respond(req, ids, prepare(req, ids, req.max_completion_tokens or req.max_tokens, "messages"), chat=True)

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if len(prompts) != 1:
            raise ApiError(400, "exactly one prompt per request is supported", param="prompt")
        ids = text_ids(tok, prompts[0])
        return respond(req, ids, prepare(req, ids, req.max_tokens, "prompt"), chat=False)

    return app


def _check_model(name: str, served: str) -> None:
    if name != served:
        raise ApiError(404, f"the model '{name}' does not exist; this server serves '{served}'", "not_found_error",
                       param="model", code="model_not_found")


def _usage(done: Finished) -> dict:
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens}


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None,
          defaults: Sampling = Sampling()) -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    from bailong.models import resolve_model
    from bailong.serve.generate import load

    if host not in LOOPBACK:
        log.warning("serve: listening on %s: anyone who can reach this address can use the model (no authentication)", host)
    path = resolve_model(model_dir)
    model, tok, context = load(path)
    name = model_name or f"{path.parent.name}/{path.name}"  # e.g. sft/model, as the bench names models
    app = build_app(model, tok, name, context, defaults)
    log.info("serve: '%s' (context %d tokens) at http://%s:%d/v1", name, context, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
