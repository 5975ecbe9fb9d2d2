"""``qwen-serve batch IN.jsonl OUT.jsonl``: run an OpenAI batch file through the running stack.

Input lines follow the OpenAI batch input format::

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "auto", ...}}

Output lines follow the OpenAI batch output format (one per input line, in completion order)::

    {"id": "batch_req_...", "custom_id": "r1",
     "response": {"status_code": 200, "request_id": "...", "body": {...}}, "error": null}

A request the server answered with an error keeps its status and error body under ``response``; a request
that got no HTTP answer at all (connection refused, timeouts after every retry) has ``response: null`` and
``error: {"code", "message"}``.

Resumable: every output line is appended with one ``write`` and fsynced before it counts as done, so after a
crash a rerun reads OUT, cuts a torn last line, and sends only the custom_ids not yet in OUT: no line is lost
or duplicated. The whole input (and OUT) is validated before anything is sent. Retries with exponential
backoff and jitter on 429/500/502/503/504 and transport errors, honouring ``Retry-After``; other 4xx answers
are final.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

#: Endpoints a batch line may target (the stack serves both).
BATCH_URLS: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions")
#: Answers worth retrying (overload, upstream trouble); other 4xx answers are final.
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
#: At most this many input problems are listed in one error message.
MAX_LISTED_ERRORS = 20


class BatchInputError(ValueError):
    """The input or the existing output file is invalid; nothing was sent."""


class BatchRequest(BaseModel):
    """One line of an OpenAI batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512, description="caller's id, unique in the file")
    method: Literal["POST"] = "POST"
    url: Literal["/v1/chat/completions", "/v1/completions"]
    body: dict[str, Any]


class BatchSettings(BaseModel):
    """How the batch runner talks to the stack."""

    concurrency: int = Field(default=16, ge=1, le=1024, description="requests in flight at once")
    max_retries: int = Field(default=6, ge=0, description="retries per line on 429/5xx/transport errors")
    backoff_base_s: float = Field(default=0.5, ge=0, description="first backoff (doubles per retry)")
    backoff_max_s: float = Field(default=30.0, ge=0, description="cap of the exponential backoff")
    retry_after_max_s: float = Field(default=120.0, ge=0, description="cap of an honoured Retry-After")
    timeout_s: float = Field(default=600.0, gt=0, description="per-request timeout")
    progress: bool = Field(default=True, description="show a tqdm progress bar on stderr")


class BatchSummary(BaseModel):
    """What a run did."""

    total: int = Field(description="lines in the input")
    skipped: int = Field(description="lines already in the output (resumed)")
    succeeded: int = Field(default=0, description="lines answered 2xx in this run")
    failed: int = Field(default=0, description="lines written with an error in this run")
    retries: int = Field(default=0, description="retries made in this run")


# --------------------------------------------------------------------------------------------- input


def _line_errors(lineno: int, exc: ValidationError) -> list[str]:
    return [f"line {lineno}: {'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()]


def _check_body(lineno: int, req: BatchRequest) -> list[str]:
    errs = []
    if req.body.get("stream"):
        errs.append(f"line {lineno}: body.stream must be false in a batch")
    if req.url == "/v1/chat/completions" and not isinstance(req.body.get("messages"), list):
        errs.append(f"line {lineno}: body.messages (a list) is required for /v1/chat/completions")
    if req.url == "/v1/completions" and "prompt" not in req.body:
        errs.append(f"line {lineno}: body.prompt is required for /v1/completions")
    return errs


def load_requests(path: str | Path) -> list[BatchRequest]:
    """Read and validate a batch input file (blank lines are ignored).

    Args:
        path: The JSONL input file.

    Returns:
        The requests in file order.

    Raises:
        BatchInputError: Listing every bad line (up to :data:`MAX_LISTED_ERRORS`) and duplicate custom_ids.
    """
    errors: list[str] = []
    requests: list[BatchRequest] = []
    first_seen: dict[str, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"cannot read {path}: {exc}") from exc
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            req = BatchRequest.model_validate_json(raw)
        except ValidationError as exc:
            errors.extend(_line_errors(lineno, exc))
            continue
        errors.extend(_check_body(lineno, req))
        if req.custom_id in first_seen:
            errors.append(f"line {lineno}: duplicate custom_id {req.custom_id!r} (first on line "
                          f"{first_seen[req.custom_id]})")
            continue
        first_seen[req.custom_id] = lineno
        requests.append(req)
    if errors:
        more = f"\n  ... and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
        raise BatchInputError(f"{path}: {len(errors)} invalid line(s), nothing was sent:\n  "
                              + "\n  ".join(errors[:MAX_LISTED_ERRORS]) + more)
    if not requests:
        raise BatchInputError(f"{path}: no requests")
    return requests


# -------------------------------------------------------------------------------------------- output


def _cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline (a crash can leave half a line). Returns bytes cut."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as f:
        block = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return size - keep


def finished_ids(path: str | Path, known: Iterable[str] | None = None) -> set[str]:
    """custom_ids already written to an output file, after cutting a torn last line.

    Args:
        path: The output (or errors) file; a missing file has none.
        known: The input's custom_ids; an output id outside them is an error (OUT of another input).

    Returns:
        The finished custom_ids.

    Raises:
        BatchInputError: On an unparsable complete line, a duplicate id, or an id not in ``known``.
    """
    p = Path(path)
    if not p.exists():
        return set()
    cut = _cut_torn_tail(p)
    if cut:
        logger.warning("%s: cut a torn last line (%d bytes) left by an interrupted run", p, cut)
    known_set = set(known) if known is not None else None
    done: set[str] = set()
    with p.open("r", encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                cid = json.loads(raw)["custom_id"]
            except (ValueError, KeyError, TypeError) as exc:
                raise BatchInputError(f"{p} line {lineno} is not a batch output line ({exc}); "
                                      "is this the right output file?") from exc
            if cid in done:
                raise BatchInputError(f"{p} line {lineno}: custom_id {cid!r} is already on an earlier line")
            if known_set is not None and cid not in known_set:
                raise BatchInputError(f"{p} line {lineno}: custom_id {cid!r} is not in the input; "
                                      "this output file belongs to another batch")
            done.add(cid)
    return done


class JsonlAppender:
    """Appends one JSON object per line, each with a single ``write`` and an fsync (crash-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and make it durable."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def output_record(custom_id: str, status: int | None, request_id: str, body: Any,
                  error: dict[str, str] | None = None) -> dict[str, Any]:
    """One OpenAI batch output line."""
    response = None if status is None else {"status_code": status, "request_id": request_id, "body": body}
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": custom_id, "response": response,
            "error": error}


# ------------------------------------------------------------------------------------------- sending


def retry_delay(attempt: int, retry_after: str | None, settings: BatchSettings,
                rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    A ``Retry-After`` header (seconds or an HTTP date) wins, capped at ``retry_after_max_s``; otherwise
    exponential backoff with full jitter, capped at ``backoff_max_s``.
    """
    secs = _parse_retry_after(retry_after) if retry_after else None
    if secs is not None:
        return min(secs, settings.retry_after_max_s)
    cap = min(settings.backoff_max_s, settings.backoff_base_s * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, cap)


def _parse_retry_after(value: str) -> float | None:
    """Seconds of a ``Retry-After`` value (delta-seconds or HTTP date; a past date is 0), None if unparsable."""
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            secs = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (ValueError, TypeError):
            return None
    return max(0.0, secs) if secs == secs else None  # NaN is unparsable


def _body_of(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return {"error": {"message": resp.text[:2000], "type": "InvalidResponse", "param": None,
                          "code": resp.status_code}}


class _Runner:
    """Sends the pending lines with bounded concurrency and writes one output line per request."""

    def __init__(self, base_url: str, api_key: str | None, settings: BatchSettings, out: JsonlAppender,
                 errors: JsonlAppender | None, summary: BatchSummary) -> None:
        base = base_url.rstrip("/")
        self.base = base[:-3] if base.endswith("/v1") else base
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.s = settings
        self.out = out
        self.errors = errors
        self.summary = summary
        self.rng = random.Random()

    async def _send(self, client: httpx.AsyncClient, req: BatchRequest) -> dict[str, Any]:
        """Send one line, retrying transient failures; returns its output record."""
        request_id = f"batch-{uuid.uuid4().hex}"
        body = {"model": "auto", **req.body}
        attempt = 0
        while True:
            retry_after: str | None = None
            try:
                resp = await client.post(self.base + req.url, json=body,
                                         headers={**self.headers, "x-request-id": request_id})
                if resp.status_code not in RETRY_STATUSES or attempt >= self.s.max_retries:
                    rid = resp.headers.get("x-request-id", request_id)
                    return output_record(req.custom_id, resp.status_code, rid, _body_of(resp))
                retry_after = resp.headers.get("retry-after")
                why = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                if attempt >= self.s.max_retries:
                    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
                    msg = f"{type(exc).__name__}: {exc} (after {attempt + 1} attempt(s))"
                    return output_record(req.custom_id, None, request_id, None, {"code": code, "message": msg})
                why = type(exc).__name__
            attempt += 1
            self.summary.retries += 1
            delay = retry_delay(attempt, retry_after, self.s, self.rng)
            logger.debug("custom_id=%s %s; retry %d in %.2fs", req.custom_id, why, attempt, delay)
            await asyncio.sleep(delay)

    def _write(self, record: dict[str, Any]) -> None:
        resp = record["response"]
        ok = resp is not None and 200 <= resp["status_code"] < 300
        if ok:
            self.summary.succeeded += 1
        else:
            self.summary.failed += 1
            status = resp["status_code"] if resp else record["error"]["code"]
            logger.warning("custom_id=%s failed: %s", record["custom_id"], status)
        (self.out if ok or self.errors is None else self.errors).append(record)

    async def run(self, pending: list[BatchRequest], bar: Any) -> None:
        """Send every pending line; each result is durable before the next is counted."""
        queue: asyncio.Queue[BatchRequest] = asyncio.Queue()
        for req in pending:
            queue.put_nowait(req)
        limits = httpx.Limits(max_connections=self.s.concurrency, max_keepalive_connections=self.s.concurrency)
        async with httpx.AsyncClient(timeout=self.s.timeout_s, limits=limits) as client:

            async def worker() -> None:
                while True:
                    try:
                        req = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    self._write(await self._send(client, req))
                    bar.update(1)

            await asyncio.gather(*(worker() for _ in range(min(self.s.concurrency, len(pending)))))


# ------------------------------------------------------------------------------------------- driver


def plan_batch(input_path: str | Path, output_path: str | Path,
               errors_path: str | Path | None = None) -> tuple[list[BatchRequest], list[BatchRequest]]:
    """Validate the input and the existing output(s); split the requests into (all, pending).

    Raises:
        BatchInputError: On any invalid input line, duplicate id, or an output that does not match.
    """
    requests = load_requests(input_path)
    ids = [r.custom_id for r in requests]
    done = finished_ids(output_path, ids)
    if errors_path is not None:
        err_done = finished_ids(errors_path, ids)
        if both := done & err_done:
            raise BatchInputError(f"custom_id(s) in both {output_path} and {errors_path}: {sorted(both)[:5]}")
        done |= err_done
    return requests, [r for r in requests if r.custom_id not in done]


def execute_batch(input_path: str | Path, output_path: str | Path, *, base_url: str,
                    api_key: str | None = None, settings: BatchSettings | None = None,
                    errors_path: str | Path | None = None) -> BatchSummary:
    """Run a batch file to completion (resuming from an existing output).

    Args:
        input_path: OpenAI batch input JSONL.
        output_path: Output JSONL (appended to; created if missing).
        base_url: The stack, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted).
        api_key: Bearer key for a stack that requires one.
        settings: Concurrency, retries, timeouts, progress bar.
        errors_path: If given, failed lines go here instead of ``output_path`` (as OpenAI's error file).

    Returns:
        The run's summary.

    Raises:
        BatchInputError: Before anything is sent, when the input or the existing output is invalid.
    """
    from tqdm import tqdm

    s = settings or BatchSettings()
    requests, pending = plan_batch(input_path, output_path, errors_path)
    summary = BatchSummary(total=len(requests), skipped=len(requests) - len(pending))
    if summary.skipped:
        logger.info("resuming: %d of %d line(s) already done, %d to send", summary.skipped, summary.total,
                    len(pending))
    out = JsonlAppender(output_path)
    errors = JsonlAppender(errors_path) if errors_path is not None else None
    bar = tqdm(total=summary.total, initial=summary.skipped, unit="req", desc="batch", disable=not s.progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        asyncio.run(_Runner(base_url, api_key, s, out, errors, summary).run(pending, bar))
    finally:
        bar.close()
        out.close()
        if errors is not None:
            errors.close()
    return summary


def run_batch(input: str | Path, output: str | Path, *, base_url: str, concurrency: int = 16,
              api_key: str | None = None, errors: str | Path | None = None, max_retries: int = 6,
              timeout_s: float = 600.0, progress: bool = True) -> int:
    """CLI entry: run a batch file and return the exit code.

    Args:
        input: OpenAI batch input JSONL.
        output: Output JSONL (resumed if it exists).
        base_url: The stack's base URL.
        concurrency: Requests in flight at once.
        api_key: Bearer key (``--api-key`` / ``QWEN_SERVE_API_KEY``).
        errors: Optional separate file for failed lines.
        max_retries: Retries per line on 429/5xx/transport errors.
        timeout_s: Per-request timeout.
        progress: Show the progress bar.

    Returns:
        0 when every line succeeded, 1 when some lines were written with an error, 2 on invalid input.
    """
    settings = BatchSettings(concurrency=concurrency, max_retries=max_retries, timeout_s=timeout_s,
                             progress=progress)
    try:
        summary = execute_batch(input, output, base_url=base_url, api_key=api_key, settings=settings,
                                  errors_path=errors)
    except BatchInputError as exc:
        sys.stderr.write(f"batch: {exc}\n")
        return 2
    logger.info("batch done: %d line(s), %d already done, %d succeeded, %d failed, %d retries -> %s",
                summary.total, summary.skipped, summary.succeeded, summary.failed, summary.retries, output)
    return 1 if summary.failed else 0
