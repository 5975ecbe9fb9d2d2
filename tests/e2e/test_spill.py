"""Spill-over on the real stack: a saturated first candidate hands the task to the next one (issue 3).

The e2e fleet lets ``qwen-coder`` (first candidate of the code task) admit only ``SMALL_MAX_ONGOING`` requests,
so its soft limit (90 %) is 3 in flight. Three long real generations saturate it; a code request to the
``qwen-code`` alias must then be served by ``qwen3-general`` with the reason in the headers and in
``/v1/route``, and go back to ``qwen-coder`` once the generations are done.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.fleet import API_KEYS, SMALL, SMALL_MAX_ONGOING

AUTH = {"authorization": f"Bearer {API_KEYS[0]}"}
CODE = {"model": "qwen-code", "max_tokens": 8,
        "messages": [{"role": "user", "content": "Fix this Python function: def f(x: return x+1"}]}


def inflight(stack_url: str) -> int:
    rows = httpx.get(stack_url + "/v1/status", timeout=10).json()["endpoints"].get(SMALL, [])
    return sum(int(r["ongoing"]) for r in rows)


def spills(stack_url: str) -> float:
    for line in httpx.get(stack_url + "/metrics", headers=AUTH, timeout=10).text.splitlines():
        if line.startswith('qwen_router_spillovers_total{reason="saturated"}'):
            return float(line.split()[-1])
    return 0.0


def test_saturated_first_candidate_spills_to_the_next(stack_url: str) -> None:
    soft = int(SMALL_MAX_ONGOING * 0.9)
    long_body: dict[str, Any] = {"model": SMALL, "max_tokens": 1500, "ignore_eos": True,
                                 "messages": [{"role": "user", "content": "Write a very long program."}]}
    before = spills(stack_url)
    with httpx.Client(base_url=stack_url, headers=AUTH, timeout=180) as http, ThreadPoolExecutor(soft) as pool:
        assert http.post("/v1/chat/completions", json=CODE).headers["x-qwen-model"] == SMALL, "idle: first choice"
        running = [pool.submit(http.post, "/v1/chat/completions", json=long_body) for _ in range(soft)]
        deadline = time.monotonic() + 30
        while inflight(stack_url) < soft and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inflight(stack_url) >= soft, "the long generations are in flight"
        r = http.post("/v1/chat/completions", json=CODE)
        assert r.status_code == 200
        assert r.headers["x-qwen-task"] == "code" and r.headers["x-qwen-model"] == "qwen3-general"
        assert f"skipped {SMALL}:saturated" in r.headers["x-qwen-route-reason"]
        dry = http.post("/v1/route", json=CODE).json()
        assert dry["task"] == "code" and dry["model"] == "qwen3-general", dry
        assert spills(stack_url) >= before + 1
        assert [f.result().status_code for f in running] == [200] * soft, "the saturating requests finish"
    with httpx.Client(base_url=stack_url, headers=AUTH, timeout=60) as http:
        r = http.post("/v1/chat/completions", json=CODE)
        assert r.headers["x-qwen-model"] == SMALL, "back to the first candidate once it has room"
