"""A fake OpenAI-compatible LLM server with a configurable TTFT and token rate.

This is a FAKE engine for testing the load-test harness and benchmarking the router alone: it does no
inference and returns filler words (each one Qwen token), timed like a real engine: the first token
after ``ttft_s``, then one token every ``1 / tokens_per_s`` seconds. It speaks chat and completions,
streaming or not, with ``usage`` (also in streams with ``stream_options.include_usage``), ``n``,
``max_tokens`` / ``finish_reason="length"``, ``ignore_eos`` / ``min_tokens``, thinking (``reasoning``
deltas) and the router's ``x-qwen-task`` / ``x-qwen-model`` headers.

Run it with ``python -m loadtest.fake_server --port 9001 --ttft-ms 50 --tps 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

#: Filler words; each is one token in the Qwen tokenizer (with its leading space).
WORDS: tuple[str, ...] = (" the", " a", " and", " of", " to", " in", " is", " it", " that", " for")
TASK_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("code", ("```", "python", "function", "code", "class ")),
    ("math", ("solve", "integral", "compute", "equation", "prove")),
    ("reasoning", ("step by step", "reason", "logical")),
)


class FakeServerSettings(BaseModel):
    """Behaviour of the fake server."""

    ttft_s: float = Field(default=0.05, ge=0, description="time to first token, seconds")
    tokens_per_s: float = Field(default=100.0, gt=0, description="decode rate per sequence")
    natural_len: int = Field(
        default=64, ge=1, description="tokens before a natural stop (EOS) unless ignore_eos"
    )
    default_max_tokens: int = Field(default=256, ge=1, description="max_tokens when the request sets none")
    max_model_len: int = Field(default=32768, ge=1, description="max_tokens above this is a 400")
    chunk_tokens: int = Field(
        default=1, ge=1, description="tokens per streamed chunk (like --stream-interval)"
    )
    models: list[str] = Field(default_factory=lambda: ["fake-qwen"], description="served model ids")
    task_models: dict[str, str] = Field(default_factory=dict, description="task -> model for x-qwen-model")
    task_headers: bool = Field(default=True, description="send x-qwen-task / x-qwen-model response headers")
    reasoning_tokens: int = Field(
        default=0, ge=0, description="reasoning tokens when thinking is on (0: half)"
    )
    thinking_default: bool = Field(default=False, description="thinking when the request does not say")
    reasoning_field: str = Field(default="reasoning", description="delta field for reasoning text")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="fraction of requests answered with a 503")
    usage_skew: int = Field(default=0, description="added to reported completion_tokens (to test the checks)")
    exact_prompt_tokens: bool = Field(
        default=False, description="count prompt tokens with the Qwen tokenizer"
    )
    seed: int = Field(default=0, description="seed for error injection")
    embedding_dim: int = Field(default=128, ge=1, description="length of the FAKE embeddings")


def _error(status: int, message: str, err_type: str) -> JSONResponse:
    body = {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _has_image(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def fake_classify(text: str, has_image: bool) -> str:
    """Keyword stand-in for the router's task classifier (fake; only for the headers)."""
    if has_image:
        return "vision"
    low = text.lower()
    for task, words in TASK_KEYWORDS:
        if any(w in low for w in words):
            return task
    return "general"


@functools.lru_cache(maxsize=4096)
def _choice_json(
    chat: bool, index: int, rfield: str, reasoning: str, content: str, finish: str | None
) -> str:
    """JSON of one streamed choice (cached: the fake repeats a handful of words)."""
    if not chat:
        return json.dumps({"index": index, "text": content, "finish_reason": finish})
    delta: dict[str, str] = {rfield: reasoning} if reasoning else {}
    if content or not reasoning:
        delta["content"] = content
    return json.dumps({"index": index, "delta": delta, "finish_reason": finish})


class _Plan:
    """What one request will generate."""

    def __init__(self, s: FakeServerSettings, body: dict[str, Any], chat: bool) -> None:
        mt = body.get("max_completion_tokens") or body.get("max_tokens") or s.default_max_tokens
        self.max_tokens = int(mt)
        stop_at = (
            self.max_tokens
            if body.get("ignore_eos")
            else max(s.natural_len, int(body.get("min_tokens") or 0))
        )
        self.n_tokens = max(1, min(self.max_tokens, stop_at))
        self.finish = "length" if self.n_tokens >= self.max_tokens else "stop"
        kwargs = body.get("chat_template_kwargs") or {}
        thinking = kwargs.get("enable_thinking", s.thinking_default) if chat else False
        want = s.reasoning_tokens or self.n_tokens // 2
        self.n_reasoning = min(want, self.n_tokens - 1) if thinking else 0
        self.n = int(body.get("n") or 1)


class FakeEngine:
    """Request handlers of the fake server (no FastAPI types except Request/Response)."""

    def __init__(self, settings: FakeServerSettings) -> None:
        self.s = settings
        self.rng = random.Random(settings.seed)
        self._tok: Any = None
        #: LoRA adapter ids loaded at run time (loadtest.fake_pooling); accepted as ``model``.
        self.adapters: set[str] = set()

    def _prompt_tokens(self, body: dict[str, Any], chat: bool) -> int:
        if not self.s.exact_prompt_tokens:
            text = (
                " ".join(_text_of(m.get("content")) for m in body["messages"])
                if chat
                else str(body["prompt"])
            )
            return max(1, len(text.split()))
        if self._tok is None:
            from loadtest.tokens import load_tokenizer

            self._tok = load_tokenizer()
        if chat:
            msgs = [
                {"role": m.get("role", "user"), "content": _text_of(m.get("content"))}
                for m in body["messages"]
            ]
            return len(self._tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True))
        return len(self._tok.encode(str(body["prompt"]), add_special_tokens=False))

    def _validate(self, body: dict[str, Any], chat: bool) -> JSONResponse | None:
        if chat and not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is required", "BadRequestError")
        if not chat and "prompt" not in body:
            return _error(400, "'prompt' is required", "BadRequestError")
        model = body.get("model")
        if (model not in (*self.s.models, *self.adapters, "auto", None)
                and model not in self.s.task_models.values()):
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        mt = body.get("max_completion_tokens") or body.get("max_tokens")
        if mt is not None and (int(mt) < 1 or int(mt) > self.s.max_model_len):
            return _error(400, f"max_tokens must be in [1, {self.s.max_model_len}]", "BadRequestError")
        if self.s.error_rate and self.rng.random() < self.s.error_rate:
            return _error(503, "fake overload", "ServiceUnavailableError")
        return None

    def _headers(self, request: Request, body: dict[str, Any], chat: bool) -> dict[str, str]:
        if not self.s.task_headers:
            return {}
        task = request.headers.get("x-qwen-task")
        if not task:
            text = (
                " ".join(_text_of(m.get("content")) for m in body["messages"])
                if chat
                else str(body["prompt"])
            )
            task = fake_classify(text[:2000], chat and _has_image(body["messages"]))
        model = body.get("model") or "auto"
        if model == "auto":
            model = self.s.task_models.get(task, self.s.models[0])
        return {"x-qwen-task": task, "x-qwen-model": model}

    async def handle(self, request: Request, chat: bool) -> Response:
        """Serve one chat or completions request."""
        try:
            body = json.loads(await request.body())
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return _error(400, "request body must be a JSON object", "BadRequestError")
        if (err := self._validate(body, chat)) is not None:
            return err
        plan = _Plan(self.s, body, chat)
        headers = self._headers(request, body, chat)
        model = str(headers.get("x-qwen-model") or body.get("model") or self.s.models[0])
        prompt_tokens = self._prompt_tokens(body, chat)
        if body.get("stream"):
            opts = body.get("stream_options") or {}
            gen = self._stream(plan, model, chat, prompt_tokens, bool(opts.get("include_usage")))
            return StreamingResponse(gen, media_type="text/event-stream", headers=headers)
        await asyncio.sleep(self.s.ttft_s + (plan.n_tokens - 1) / self.s.tokens_per_s)
        return JSONResponse(self._full(plan, model, chat, prompt_tokens), headers=headers)

    def _texts(self, plan: _Plan, start: int, stop: int) -> tuple[str, str]:
        """(reasoning, content) text of tokens [start, stop)."""
        words = [WORDS[i % len(WORDS)] for i in range(start, stop)]
        r = "".join(words[: max(0, plan.n_reasoning - start)])
        return r, "".join(words[max(0, plan.n_reasoning - start) :])

    def _usage(self, plan: _Plan, prompt_tokens: int) -> dict[str, int]:
        completion = plan.n * plan.n_tokens + self.s.usage_skew
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    def _full(self, plan: _Plan, model: str, chat: bool, prompt_tokens: int) -> dict[str, Any]:
        reasoning, content = self._texts(plan, 0, plan.n_tokens)
        choices: list[dict[str, Any]] = []
        for i in range(plan.n):
            if chat:
                msg: dict[str, Any] = {"role": "assistant", "content": content}
                if plan.n_reasoning:
                    msg[self.s.reasoning_field] = reasoning
                choices.append({"index": i, "message": msg, "finish_reason": plan.finish})
            else:
                choices.append({"index": i, "text": content, "finish_reason": plan.finish})
        return {
            "id": f"fake-{uuid.uuid4().hex}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": self._usage(plan, prompt_tokens),
        }

    async def _stream(
        self, plan: _Plan, model: str, chat: bool, prompt_tokens: int, include_usage: bool
    ) -> AsyncIterator[bytes]:
        head = json.dumps(
            {
                "id": f"fake-{uuid.uuid4().hex}",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()),
                "model": model,
            }
        )[:-1]
        t0 = time.perf_counter()
        await asyncio.sleep(self.s.ttft_s)
        pending: list[str] = []
        if chat:
            for i in range(plan.n):
                role = {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                pending.append(f'data: {head}, "choices": [{json.dumps(role)}]}}\n\n')
        step = self.s.chunk_tokens
        for start in range(0, plan.n_tokens, step):
            delay = t0 + self.s.ttft_s + start / self.s.tokens_per_s - time.perf_counter()
            if delay > 0:
                if pending:  # flush events that are already due before waiting
                    yield "".join(pending).encode()
                    pending = []
                await asyncio.sleep(delay)
            stop = min(plan.n_tokens, start + step)
            reasoning, content = self._texts(plan, start, stop)
            finish = plan.finish if stop == plan.n_tokens else None
            for i in range(plan.n):  # one choice per chunk, as vLLM does for n > 1
                part = _choice_json(chat, i, self.s.reasoning_field, reasoning, content, finish)
                pending.append(f'data: {head}, "choices": [{part}]}}\n\n')
        if include_usage:
            usage = json.dumps(self._usage(plan, prompt_tokens))
            pending.append(f'data: {head}, "choices": [], "usage": {usage}}}\n\n')
        pending.append("data: [DONE]\n\n")
        yield "".join(pending).encode()


def create_app(
    ttft_s: float = 0.05,
    tokens_per_s: float = 100.0,
    settings: FakeServerSettings | None = None,
    **kwargs: Any,
) -> FastAPI:
    """Build the fake server app.

    Args:
        ttft_s: Time to first token (seconds).
        tokens_per_s: Decode rate per sequence.
        settings: Full settings; when given, ``ttft_s``/``tokens_per_s``/``kwargs`` are ignored.
        **kwargs: Any other :class:`FakeServerSettings` field.

    Returns:
        A FastAPI app serving ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/tokenize``,
        ``/detokenize`` (FAKE counts: words, or the Qwen tokenizer with ``exact_prompt_tokens``), ``/health``,
        and the FAKE pooling and LoRA endpoints of :mod:`loadtest.fake_pooling`.
    """
    s = settings or FakeServerSettings(ttft_s=ttft_s, tokens_per_s=tokens_per_s, **kwargs)
    engine = FakeEngine(s)
    app = FastAPI(title="qwen-serve FAKE OpenAI server")
    app.state.fake_engine = engine

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await engine.handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await engine.handle(request, chat=False)

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Response:
        body = json.loads(await request.body())
        chat = "messages" in body
        n = engine._prompt_tokens(body, chat)
        return JSONResponse({"count": n, "max_model_len": s.max_model_len, "tokens": list(range(n))})

    @app.post("/detokenize")
    async def detokenize(request: Request) -> Response:
        tokens = json.loads(await request.body()).get("tokens") or []
        return JSONResponse({"prompt": " ".join(WORDS[t % len(WORDS)].strip() for t in tokens)})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": m, "object": "model", "owned_by": "fake"} for m in s.models]
        data += [{"id": a, "object": "model", "owned_by": "fake", "parent": a.partition(":")[0]}
                 for a in sorted(engine.adapters)]
        return {"object": "list", "data": data}

    from loadtest.fake_pooling import add_pooling_routes

    add_pooling_routes(app, s.models, engine.adapters, s.embedding_dim)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    from loadtest.fake_apis import attach

    attach(app, list(s.models))  # FAKE /v1/responses and Anthropic /v1/messages
    return app


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m loadtest.fake_server --port 9001 --ttft-ms 50 --tps 100``."""
    p = argparse.ArgumentParser(
        description="FAKE OpenAI-compatible server for load-test and router benchmarks"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--tps", type=float, default=100.0, help="tokens per second per sequence")
    p.add_argument("--natural-len", type=int, default=64)
    p.add_argument("--chunk-tokens", type=int, default=1)
    p.add_argument("--model", action="append", help="served model id (repeatable)")
    p.add_argument("--reasoning-tokens", type=int, default=0)
    p.add_argument("--thinking-default", action="store_true")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--exact-prompt-tokens", action="store_true")
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    import uvicorn

    app = create_app(
        ttft_s=a.ttft_ms / 1000.0,
        tokens_per_s=a.tps,
        natural_len=a.natural_len,
        chunk_tokens=a.chunk_tokens,
        models=a.model or ["fake-qwen"],
        reasoning_tokens=a.reasoning_tokens,
        thinking_default=a.thinking_default,
        error_rate=a.error_rate,
        exact_prompt_tokens=a.exact_prompt_tokens,
    )
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level, access_log=False)


if __name__ == "__main__":
    main()
