"""The HTTP API (FastAPI): OpenAI-compatible completions, the deletions API, the ledger page.

Request bodies are read and validated here by hand (size limit first, then JSON, then
each field), so every mistake is a 4xx with an OpenAI-style JSON error
(``{"error": {"message", "type", "code"}}``) and never a traceback; a bug is a 500 with
the same shape and the traceback only in the server's log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from obliviate.data.format import qa_prompt
from obliviate.errors import UserError
from obliviate.serve.auth import ANONYMOUS, Authenticator, Principal
from obliviate.serve.certificate import build_certificate, render_markdown
from obliviate.serve.generation import Batcher, GenerationRequest
from obliviate.serve.page import render_page
from obliviate.serve.service import DeletionService

log = logging.getLogger(__name__)

MAX_PROMPTS = 32          # prompts in one completions request
MAX_STOPS = 4             # as OpenAI


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error",
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.kind, self.headers = status, message, code, kind, headers


def error_response(status: int, message: str, code: str, kind: str = "invalid_request_error",
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status,
                        headers=headers)


# -- request fields ------------------------------------------------------------------------------
def _number(data: dict, key: str, default, low, high, integer: bool = False):
    value = data.get(key, default)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if integer else "a number"
        raise ApiError(400, f"'{key}' must be {expected}, got {value!r}", "invalid_value")
    if not low <= value <= high:
        raise ApiError(400, f"'{key}' must be between {low} and {high}, got {value}", "invalid_value")
    return value


def _stops(data: dict) -> tuple[str, ...]:
    stop = data.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > MAX_STOPS:
        raise ApiError(400, f"'stop' must be a string or a list of at most {MAX_STOPS} strings", "invalid_value")
    return tuple(stops)


def _unsupported(data: dict) -> None:
    if data.get("stream"):
        raise ApiError(400, "streaming is not supported by this server; send stream=false", "unsupported")
    if data.get("n", 1) not in (1, None):
        raise ApiError(400, "only n=1 is supported", "unsupported")
    if data.get("best_of") not in (None, 1):
        raise ApiError(400, "'best_of' is not supported by this server", "unsupported")
    for key in ("logprobs", "echo", "suffix", "tools", "functions"):
        if data.get(key) not in (None, False):
            raise ApiError(400, f"'{key}' is not supported by this server", "unsupported")


def _chat_prompt(tokenizer, messages) -> str:
    """The prompt of a chat: the tokenizer's chat template, or the project's QA format
    (``Question: ...\\nAnswer:`` per user turn) for a model trained without one."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", "invalid_value")
    turns = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise ApiError(400, "each message needs a role: system, user or assistant", "invalid_value")
        content = message.get("content")
        if isinstance(content, list):   # content parts: only text
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ApiError(400, "only text content parts are supported", "unsupported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(400, "each message's content must be a string", "invalid_value")
        turns.append({"role": message["role"], "content": content})
    if turns[-1]["role"] != "user":
        raise ApiError(400, "the last message must be the user's", "invalid_value")
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    parts = []
    for turn in turns:
        if turn["role"] == "user":
            parts.append(qa_prompt(turn["content"]))
        elif turn["role"] == "assistant":
            parts.append(" " + turn["content"].strip() + "\n")
        else:
            parts.append(turn["content"].strip() + "\n")
    return "".join(parts)


# -- the app -------------------------------------------------------------------------------------
def create_app(service: DeletionService, batcher: Batcher, authenticator: Authenticator, wake_jobs) -> FastAPI:
    config = service.config
    app = FastAPI(title="obliviate serve", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.code, exc.kind, exc.headers)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return error_response(400, str(exc), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, str(exc.detail), code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(400, "invalid request", "invalid_request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error (the server's log has the details)", "internal_error",
                              "server_error")

    def authorize(request: Request, admin: bool) -> Principal:
        try:
            principal = authenticator.identify(request.headers.get("authorization"))
        except ValueError as exc:
            raise ApiError(401, f"authentication failed: {exc}", "invalid_token", "authentication_error",
                           {"WWW-Authenticate": "Bearer"}) from None
        if admin:
            if not authenticator.has_admin:
                raise ApiError(403, "this server has no admin token: start it with --tokens FILE or "
                               "$OBLIVIATE_SERVE_TOKENS to accept deletions", "no_admin", "permission_error")
            if principal is None:
                raise ApiError(401, "deletions need an admin token (Authorization: Bearer TOKEN)", "missing_token",
                               "authentication_error", {"WWW-Authenticate": "Bearer"})
            if not principal.is_admin:
                raise ApiError(403, f"token {principal.name!r} is not an admin token", "not_admin",
                               "permission_error")
            return principal
        if principal is None:
            if config.require_token:
                raise ApiError(401, "this server needs a token (Authorization: Bearer TOKEN)", "missing_token",
                               "authentication_error", {"WWW-Authenticate": "Bearer"})
            return ANONYMOUS
        return principal

    async def read_body(request: Request) -> dict:
        limit = config.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ApiError(400, "bad Content-Length header", "invalid_header")
            if int(length) > limit:
                raise ApiError(413, f"the body is {int(length)} bytes; this server takes at most {limit}",
                               "body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body is over {limit} bytes, the most this server takes", "body_too_large")
            chunks.append(chunk)
        try:
            data = json.loads(b"".join(chunks).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {str(exc).splitlines()[0]}", "invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object", "invalid_json")
        return data

    def check_model(data: dict) -> None:
        model = data.get("model")
        if model is not None and model != service.name:
            raise ApiError(404, f"model {model!r} is not served here; this server serves {service.name!r}",
                           "model_not_found")

    def generation_params(data: dict) -> dict[str, Any]:
        _unsupported(data)
        served, _ = service.snapshot()
        context = getattr(served.model.config, "max_position_embeddings", None) or config.max_tokens_limit + 1
        limit = min(config.max_tokens_limit, context - 1)   # room for at least one prompt token
        requested = {"max_tokens": data.get("max_completion_tokens", data.get("max_tokens"))}
        return {"max_tokens": _number(requested, "max_tokens", 16, 1, limit, integer=True),
                "temperature": float(_number(data, "temperature", 1.0, 0.0, 2.0)),
                "top_p": float(_number(data, "top_p", 1.0, 0.0, 1.0)),
                "seed": _number(data, "seed", None, -(1 << 63), (1 << 63) - 1, integer=True),
                "stop": _stops(data)}

    async def generate(prompts: list[str], params: dict):
        futures = [batcher.submit(GenerationRequest(prompt=p, **params)) for p in prompts]
        try:
            return [await asyncio.wrap_future(f) for f in futures]
        except UserError as exc:
            raise ApiError(400, str(exc), "invalid_prompt") from None

    def usage(results) -> dict:
        prompt = sum(r.prompt_tokens for r in results)
        completion = sum(r.completion_tokens for r in results)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def served_info(results) -> dict:
        return {"state_version": min(r.state_version for r in results), "model_hash": results[0].model_hash}

    def headers(results) -> dict:
        return {"X-Obliviate-State-Version": str(min(r.state_version for r in results))}

    @app.get("/healthz")
    async def healthz():
        served, version = service.snapshot()
        return {"status": "ok", "model": service.name, "kind": "sink" if service.is_sink else "dense",
                "model_hash": served.model_hash, "model_dir": served.model_dir, "state_version": version}

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request, admin=False)
        return {"object": "list", "data": [{"id": service.name, "object": "model", "created": started,
                                            "owned_by": "obliviate"}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        authorize(request, admin=False)
        data = await read_body(request)
        check_model(data)
        prompt = data.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(400, "'prompt' must be a string or a non-empty list of strings", "invalid_value")
        if len(prompts) > MAX_PROMPTS:
            raise ApiError(400, f"at most {MAX_PROMPTS} prompts per request", "invalid_value")
        results = await generate(prompts, generation_params(data))
        body = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": service.name,
                "choices": [{"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
                            for i, r in enumerate(results)],
                "usage": usage(results), "obliviate": served_info(results)}
        return JSONResponse(body, headers=headers(results))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorize(request, admin=False)
        data = await read_body(request)
        check_model(data)
        served, _ = service.snapshot()
        prompt = _chat_prompt(served.tokenizer, data.get("messages"))
        results = await generate([prompt], generation_params(data))
        result = results[0]
        body = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": service.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "logprobs": None, "finish_reason": result.finish_reason}],
                "usage": usage(results), "obliviate": served_info(results)}
        return JSONResponse(body, headers=headers(results))

    @app.post("/v1/deletions")
    async def create_deletion(request: Request):
        principal = authorize(request, admin=True)
        data = await read_body(request)
        unknown = sorted(set(data) - {"sources", "method"})
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(unknown)}; a deletion takes 'sources' and 'method'",
                           "invalid_value")
        method = data.get("method")
        if method is not None and not isinstance(method, str):
            raise ApiError(400, "'method' must be a string", "invalid_value")
        record = service.request_deletion(principal, data.get("sources"), method)
        if record["mode"] == "job":
            wake_jobs()
            return JSONResponse(record, status_code=202)
        return JSONResponse(record, headers={"X-Obliviate-State-Version": str(record["state_version"])})

    def find(deletion_id: str):
        record = service.ledger.deletions().get(deletion_id)
        if record is None:
            raise ApiError(404, f"no deletion {deletion_id!r} in the ledger", "deletion_not_found")
        return record

    @app.get("/v1/deletions")
    async def list_deletions(request: Request):
        authorize(request, admin=False)
        return {"object": "list", "data": [d.to_json() for d in service.ledger.deletions().values()]}

    @app.get("/v1/deletions/{deletion_id}")
    async def get_deletion(deletion_id: str, request: Request):
        authorize(request, admin=False)
        return find(deletion_id).to_json()

    @app.get("/v1/deletions/{deletion_id}/certificate")
    async def certificate(deletion_id: str, request: Request, format: str = "json"):
        authorize(request, admin=False)
        if format not in ("json", "md"):
            raise ApiError(400, "format must be json or md", "invalid_value")
        cert = build_certificate(find(deletion_id).to_json(), str(config.ledger), service.ledger.server_events())
        if format == "md":
            return PlainTextResponse(render_markdown(cert), media_type="text/markdown; charset=utf-8")
        return {"certificate": cert, "markdown": render_markdown(cert)}

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request):
        authorize(request, admin=False)
        served, version = service.snapshot()
        return HTMLResponse(render_page([d.to_json() for d in service.ledger.deletions().values()],
                                        {"model": service.name, "model_hash": served.model_hash,
                                         "kind": "sink" if service.is_sink else "dense", "state_version": version,
                                         "ledger": str(config.ledger)}))

    return app
