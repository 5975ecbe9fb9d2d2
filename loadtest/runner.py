"""Drives a load: arrivals, concurrency, warm-up, stop conditions, progress bar and client CPU.

Open loop (finite ``request_rate``): conversations arrive on the arrival process; with
``max_concurrency`` they wait for a slot, and that wait is the *client queue time*. Closed loop
(``request_rate = inf`` with ``max_concurrency = C``): C workers each send their next conversation as
soon as the previous one finishes (no queue). ``rate = inf`` without a cap sends everything at once.
A run stops after its conversations (count), at ``duration_s`` (in-flight requests finish), or when the
error rate exceeds ``max_error_rate`` once ``min_requests_for_error_rate`` requests have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil
from pydantic import BaseModel, Field
from tqdm import tqdm

from loadtest.arrivals import arrival_times
from loadtest.client import ClientOptions, RequestRecord, send_turn
from loadtest.workloads.base import Conversation

logger = logging.getLogger(__name__)

CPU_WARN_PERCENT = 70.0


class LoadConfig(BaseModel):
    """How the workload is offered."""

    request_rate: float = Field(default=math.inf, gt=0, description="arrivals per second; inf = no pacing")
    burstiness: float = Field(default=1.0, gt=0, description="gamma shape: 1 Poisson, inf constant")
    max_concurrency: int | None = Field(
        default=None, ge=1, description="client-side cap on in-flight requests"
    )
    warmup: int = Field(default=0, ge=0, description="warm-up requests sent first and excluded")
    duration_s: float | None = Field(
        default=None, gt=0, description="stop dispatching after this many seconds"
    )
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="stop above this failed fraction"
    )
    min_requests_for_error_rate: int = Field(
        default=20, ge=1, description="ended requests before it is checked"
    )
    think_time_s: float = Field(
        default=0.0, ge=0, description="multi-turn: pause between a reply and the next turn"
    )
    seed: int = Field(default=0, description="seed of the arrival process")
    disable_tqdm: bool = Field(default=False, description="no progress bar")


@dataclass
class RunResult:
    """The outcome of one load."""

    records: list[RequestRecord]
    duration_s: float
    stopped_by: str
    cpu: dict[str, float]
    warmup_failed: int = 0
    started_at: float = field(default_factory=time.time)


class _CpuMonitor:
    """Samples this process's CPU % (100 = one full core) while the load runs."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.proc = psutil.Process()
        self.interval = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.samples.append(self.proc.cpu_percent(None))

    def start(self) -> None:
        self.proc.cpu_percent(None)
        self._t0, self._c0 = time.perf_counter(), sum(self.proc.cpu_times()[:2])
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, float]:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        wall = max(time.perf_counter() - self._t0, 1e-9)
        mean = 100.0 * (sum(self.proc.cpu_times()[:2]) - self._c0) / wall
        peak = max(self.samples, default=mean)
        if mean > CPU_WARN_PERCENT:
            logger.warning(
                "client CPU %.0f%% > %.0f%%: the client may be the bottleneck", mean, CPU_WARN_PERCENT
            )
        return {"client_cpu_percent_mean": mean, "client_cpu_percent_max": peak}


def make_session(max_concurrency: int | None, timeout_s: float) -> aiohttp.ClientSession:
    """An aiohttp session whose pool fits the concurrency (unbounded when there is no cap)."""
    conn = aiohttp.TCPConnector(limit=max_concurrency or 0, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s))


class _Run:
    """State of one load: records, stop logic, slots."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        opts: ClientOptions,
        load: LoadConfig,
        pbar: tqdm | None,
        label: str,
    ) -> None:
        self.session, self.opts, self.load, self.pbar, self.label = session, opts, load, pbar, label
        self.records: list[RequestRecord] = []
        self.failed = 0
        self.stopped_by = "count"
        self.sem = asyncio.Semaphore(load.max_concurrency) if load.max_concurrency else None
        self.t0 = time.perf_counter()

    def should_stop(self) -> bool:
        if self.load.duration_s is not None and time.perf_counter() - self.t0 >= self.load.duration_s:
            self.stopped_by = "duration"
            return True
        lim, n = self.load.max_error_rate, len(self.records)
        if lim is not None and n >= self.load.min_requests_for_error_rate and self.failed / n > lim:
            if self.stopped_by != "error_rate":
                logger.warning("stopping: error rate %.1f%% > %.1f%%", 100 * self.failed / n, 100 * lim)
            self.stopped_by = "error_rate"
            return True
        return False

    async def _send(
        self, conv: Conversation, i: int, history: list[tuple[str, str]], due: float
    ) -> RequestRecord:
        if self.sem is None:
            return await send_turn(self.session, self.opts, conv, i, history, due)
        async with self.sem:
            return await send_turn(self.session, self.opts, conv, i, history, due)

    async def conversation(self, conv: Conversation, due: float) -> None:
        history: list[tuple[str, str]] = []
        for i, turn in enumerate(conv.turns):
            if i and self.should_stop():
                return
            rec = await self._send(conv, i, history, due)
            rec.endpoint = self.label
            self.records.append(rec)
            self.failed += not rec.success
            if self.pbar is not None:
                self.pbar.update(1)
            if not rec.success:
                return
            history.append((turn.prompt, rec.text))
            if self.load.think_time_s:
                await asyncio.sleep(self.load.think_time_s)
            due = time.perf_counter()


def _source(convs: Sequence[Conversation], endless: bool) -> Iterator[Conversation]:
    if not endless:
        yield from convs
        return
    for k, c in enumerate(itertools.cycle(convs)):
        yield dataclasses.replace(c, index=k)


async def _open_loop(run: _Run, convs: Sequence[Conversation]) -> None:
    load = run.load
    endless = load.duration_s is not None and not math.isinf(load.request_rate)
    n = int(load.request_rate * load.duration_s * 1.5) + 16 if endless and load.duration_s else len(convs)
    times = arrival_times(n, load.request_rate, load.burstiness, load.seed, normalize=not endless)
    tasks = []
    for t, conv in zip(times, _source(convs, endless), strict=False):
        delay = run.t0 + float(t) - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if run.should_stop():
            break
        tasks.append(asyncio.create_task(run.conversation(conv, run.t0 + float(t))))
    await asyncio.gather(*tasks)


async def _closed_loop(run: _Run, convs: Sequence[Conversation], workers: int) -> None:
    source = _source(convs, run.load.duration_s is not None)

    async def worker() -> None:
        for conv in source:  # a shared iterator: each conversation goes to one worker
            if run.should_stop():
                return
            await run.conversation(conv, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(workers)))


async def _warmup(
    session: aiohttp.ClientSession, opts: ClientOptions, convs: Sequence[Conversation], load: LoadConfig
) -> int:
    width = min(load.warmup, load.max_concurrency or 8)
    sem = asyncio.Semaphore(width)

    async def one(conv: Conversation) -> bool:
        async with sem:
            return (await send_turn(session, opts, conv, 0, [], time.perf_counter())).success

    picks = [convs[i % len(convs)] for i in range(load.warmup)]
    ok = await asyncio.gather(*(one(c) for c in picks))
    failed = len(ok) - sum(ok)
    if failed:
        logger.warning("%d of %d warm-up requests failed", failed, len(ok))
    return failed


async def run_load(
    session: aiohttp.ClientSession,
    opts: ClientOptions,
    convs: Sequence[Conversation],
    load: LoadConfig,
    label: str = "",
    pbar: tqdm | None = None,
    warmup: bool = True,
) -> RunResult:
    """Offer ``convs`` to one endpoint under ``load`` and return the measured records.

    Args:
        session: aiohttp session (see :func:`make_session`).
        opts: Endpoint and request options.
        convs: The workload.
        load: Arrivals, concurrency and stop rules.
        label: Stored in each record's ``endpoint`` (compare uses "A"/"B").
        pbar: Optional shared progress bar.
        warmup: Send ``load.warmup`` excluded requests first.
    """
    if not convs:
        raise ValueError("empty workload")
    if math.isinf(load.request_rate) and load.duration_s and not load.max_concurrency:
        raise ValueError("--duration with an infinite rate needs --max-concurrency")
    warm_failed = await _warmup(session, opts, convs, load) if warmup and load.warmup else 0
    cpu = _CpuMonitor()
    cpu.start()
    run = _Run(session, opts, load, pbar, label)
    if math.isinf(load.request_rate) and load.max_concurrency:
        await _closed_loop(run, convs, load.max_concurrency)
    else:
        await _open_loop(run, convs)
    duration = time.perf_counter() - run.t0
    return RunResult(run.records, duration, run.stopped_by, await cpu.stop(), warm_failed)


async def run_once(opts: ClientOptions, convs: Sequence[Conversation], load: LoadConfig) -> RunResult:
    """Open a session, run one load with a progress bar, close the session."""
    total = None if load.duration_s else sum(len(c.turns) for c in convs)
    with tqdm(total=total, disable=load.disable_tqdm, desc="requests", unit="req") as pbar:
        async with make_session(load.max_concurrency, opts.timeout_s) as session:
            return await run_load(session, opts, convs, load, pbar=pbar)


def result_meta(opts: ClientOptions, load: LoadConfig, res: RunResult) -> dict[str, Any]:
    """Run parameters stored next to the metrics (vLLM keys where they exist)."""
    return {
        "backend": "openai-chat" if opts.endpoint == "chat" else "openai",
        "base_url": opts.base_url,
        "endpoint_type": opts.endpoint,
        "model_id": opts.model,
        "request_rate": "inf" if math.isinf(load.request_rate) else load.request_rate,
        "burstiness": load.burstiness,
        "max_concurrency": load.max_concurrency,
        "num_warmups": load.warmup,
        "stopped_by": res.stopped_by,
        "warmup_failed": res.warmup_failed,
        "started_at": res.started_at,
        **res.cpu,
    }
