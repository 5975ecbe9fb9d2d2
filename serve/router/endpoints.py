"""The router's HTTP surface as data: what it answers itself, what it relays to which engines, and how.

One table so the route registration, the unknown-path 404 (which names the path and lists these) and the
README agree. The pooling paths are relayed only to deployments whose ``runner`` serves them
(:mod:`serve.router.pooling`); in preference order, so a reranker (``score``) answers ``/rerank`` before an
embedding model would (vLLM scores pairs with an embedding model by the cosine of their embeddings).
"""

from __future__ import annotations

from typing import Literal, get_args

from serve.router.protocol import RouterError

#: Pooling endpoints of vLLM's OpenAI server, relayed to the engine path of the same name.
PoolingPath = Literal["/v1/embeddings", "/pooling", "/classify", "/score", "/v1/score", "/rerank", "/v1/rerank",
                      "/v2/rerank"]
POOLING_PATHS: tuple[str, ...] = get_args(PoolingPath)

#: Runners that serve each pooling path, preferred first (``embed``: embedding models; ``score``: rerankers and
#: cross-encoders, served by vLLM as sequence classifiers).
POOLING_RUNNERS_BY_PATH: dict[str, tuple[str, ...]] = {
    "/v1/embeddings": ("embed",),
    "/pooling": ("embed", "score"),
    "/classify": ("score",),
    **{p: ("score", "embed") for p in ("/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank")},
}

#: What a pooling path is called in ``x-qwen-task`` and log lines.
POOLING_KIND: dict[str, str] = {
    "/v1/embeddings": "embeddings", "/pooling": "pooling", "/classify": "classify",
    **{p: "score" for p in ("/score", "/v1/score")},
    **{p: "rerank" for p in ("/rerank", "/v1/rerank", "/v2/rerank")},
}

#: Paths relayed to an engine replica (besides the pooling ones above).
RELAYED_PATHS: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions", "/v1/responses",
                                  "/v1/responses/{id}", "/v1/responses/{id}/cancel", "/v1/messages",
                                  "/v1/messages/count_tokens", "/tokenize", "/detokenize")

#: Paths the router answers itself.
OWN_PATHS: tuple[str, ...] = ("/v1/models", "/v1/models/{model}", "/v1/route", "/v1/status", "/health", "/ready",
                              "/metrics", "/admin/drain", "/v1/load_lora_adapter", "/v1/unload_lora_adapter",
                              "/admin/lora")

#: Prefixes under which an unknown path gets an OpenAI-shaped 404 naming it: the OpenAI API and vLLM's own
#: paths (``/v2/...``, ``/invocations``, ``/scale_elastic_ep``, ...). Anything else gets the same shape too.
API_PREFIXES: tuple[str, ...] = ("/v1/", "/v2/")


def served_paths() -> list[str]:
    """Every path the router serves (answered or relayed), for messages and docs."""
    return [*RELAYED_PATHS, *POOLING_PATHS, *OWN_PATHS]


def unknown_path_error(method: str, path: str, status: int = 404, allow: str | None = None) -> RouterError:
    """The OpenAI-shaped error for a path (or method) the router does not serve; the message names it.

    Args:
        method: The request method.
        path: The request path (shown printable and shortened).
        status: 404 (no such path) or 405 (the path exists for other methods).
        allow: The methods the path accepts (405).
    """
    shown = "".join(c if c.isprintable() and c.isascii() else "?" for c in path[:200])
    if status == 405:
        err = RouterError(f"Method {method} is not allowed on `{shown}`" + (f"; use {allow}." if allow else "."),
                          status=405, code="method_not_allowed")
        err.err_type = "invalid_request_error"
        return err
    where = "the OpenAI API or vLLM's" if shown.startswith(API_PREFIXES) else "this server's"
    err = RouterError(f"Unknown path `{shown}`: {where} paths that qwen-serve serves are "
                      f"{', '.join(served_paths())}.", status=404, code="unknown_path")
    err.err_type = "not_found_error"
    return err
