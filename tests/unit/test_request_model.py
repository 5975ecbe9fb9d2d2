"""The one request model: RequestFacts read once, one part vocabulary, the preamble's seams, the chooser."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from serve.config import ConfigError, FleetConfig
from serve.errors import InvalidRequestError, OverloadedError
from serve.router.classify import Classifier
from serve.router.classify.extract import RequestView
from serve.router.classify.registry import SIGNAL_FAMILIES
from serve.router.classify.types import Signal, SignalContext
from serve.router.facts import CHAT_PARTS, IMAGE_PARTS, KNOWN_PARTS, TEXT_PARTS, facts_of
from serve.router.offline import route_offline
from serve.router.policy import DeploymentChooser
from serve.router.service import Lease
from serve.router.tokens import IMAGE_TOKENS, TokenCounter
from serve.router.upstream import Endpoint, StaticRegistry
from serve.router.validate import validate_request
from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict

LIMITS = FleetConfig.from_dict(fleet_dict()).security.limits


def chat(*parts: Any, system: str | None = None) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": list(parts) if len(parts) > 1 else parts[0]})
    return {"model": "auto", "messages": msgs}


# --- facts --------------------------------------------------------------------------------------------
def test_facts_of_chat_reads_texts_media_tools_and_budget() -> None:
    body = {**chat({"type": "text", "text": "what is this"}, {"type": "input_image", "image_url": "data:x"},
                   system="be brief"),
            "tools": [{"type": "function", "function": {"name": "Run_Python"}}], "max_completion_tokens": 7,
            "n": 2, "chat_template_kwargs": {"enable_thinking": True}}
    f = facts_of(body, "chat", {"x-session-id": "s1"})
    assert [(t.role, t.text) for t in f.turns] == [("system", "be brief"), ("user", "what is this")]
    assert f.images == 1 and f.vision and f.tools and f.tool_names == ("run_python",)
    assert f.max_tokens == 7 and f.n == 2 and f.thinking and f.thinking_hint and f.session == "s1"
    assert f.prefix == "be brief\x00what is this" and f.last_user == 1 and f.templated


def test_facts_of_completions_prompt_and_token_ids() -> None:
    f = facts_of({"prompt": ["a", "b"], "max_tokens": 3}, "completions")
    assert [t.text for t in f.turns] == ["a\nb"] and not f.templated and f.max_tokens == 3
    assert facts_of({"prompt": [1, 2, 3]}, "completions").prompt_token_ids == 3


def test_facts_of_responses_and_anthropic_shapes() -> None:
    r = facts_of({"instructions": "You are terse.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "sum 2+2"},
                                     {"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "function_call_output", "call_id": "c", "output": "4"}],
        "max_output_tokens": 9, "reasoning": {"effort": "high"}}, "responses")
    assert [(t.role, t.text) for t in r.turns] == [("system", "You are terse."), ("user", "sum 2+2"), ("tool", "4")]
    assert r.images == 1 and r.max_tokens == 9 and r.thinking_hint and not r.thinking
    assert facts_of({"input": "hi"}, "responses").turns[0].text == "hi"
    a = facts_of({"system": [{"type": "text", "text": "sys"}], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image", "source": {"type": "base64", "data": "x"}}]}],
        "max_tokens": 5, "thinking": {"type": "enabled", "budget_tokens": 100}}, "messages")
    assert [(t.role, t.text) for t in a.turns] == [("system", "sys"), ("user", "look")]
    assert a.images == 1 and a.thinking_hint and a.max_tokens == 5


def test_one_part_vocabulary_from_validation_to_capability() -> None:
    """An `input_image` part in a chat message is accepted, counted, classified as vision and refused by a
    text-only model: every step reads the same vocabulary (it used to be rejected by one list and counted by
    another)."""
    assert TEXT_PARTS | IMAGE_PARTS <= KNOWN_PARTS and "input_image" in CHAT_PARTS
    body = chat({"type": "text", "text": "describe"}, {"type": "input_image", "image_url": "data:image/png;base64,x"})
    validate_request(body, "chat", LIMITS)
    facts = facts_of(body)
    assert Classifier().classify(facts).task == "vision"
    fleet = FleetConfig.from_dict(fleet_dict())
    chooser = DeploymentChooser(fleet, StaticRegistry({}), TokenCounter())
    assert chooser.incapable("general", facts) == "no_vision"
    text_only = facts_of(chat("describe"))
    counter = TokenCounter()
    assert counter.upper_bound(facts) - counter.upper_bound(text_only) == IMAGE_TOKENS
    with pytest.raises(InvalidRequestError) as bad:
        validate_request(chat({"type": "text", "text": "x"}, {"type": "tool_use", "id": "t"}), "chat", LIMITS)
    assert bad.value.param == "messages[0].content[1]", "Anthropic blocks belong to /v1/messages"


# --- route --local is the stack's own decision ---------------------------------------------------------
async def test_route_local_uses_the_fleets_classifier_options(fake_engines: dict[str, FakeEngineServer]) -> None:
    code = chat("Fix this Python:\n```python\ndef f(x):\n  return x[\n```")
    plain = FleetConfig.from_dict(fleet_dict())
    assert route_offline(plain, dict(code))["task"] == "code"
    strict = fleet_dict(classifier={"threshold": 1000.0, "learned": False})
    offline = route_offline(FleetConfig.from_dict(strict), dict(code))
    assert offline["task"] == "general", "the options reach the dry run (it used to ignore them)"
    async with make_router(strict, {n: e.url for n, e in fake_engines.items()}) as (c, _):
        live = (await c.post("/v1/route", json=code)).json()
    assert live == offline, "the dry run and the running router agree, field for field"
    assert set(live) >= {"task", "model", "candidates", "reason", "signals", "language", "spilled"}


def test_route_local_imports_no_vllm_and_prints_only_json(tmp_path: Any) -> None:
    code = ("import sys, json\n"
            "from serve.cli import main\n"
            "rc = main(['route', '--local', '--profile', 'demo', 'write a python function'])\n"
            "assert rc == 0\n"
            "assert 'vllm' not in sys.modules and 'torch' not in sys.modules, 'vLLM was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "QWEN_SERVE_STATE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    assert json.loads(out.stdout)["task"] == "code", "stdout is the JSON alone (pipe it to jq)"


# --- the lease -------------------------------------------------------------------------------------------
def test_lease_releases_once() -> None:
    reg = StaticRegistry({})
    ep = Endpoint("general", "r0", "http://x")
    reg.load("general").endpoints = [ep]
    lease = Lease(reg, ep)
    assert ep.ongoing == 1 and reg.load("general").ongoing == 1
    lease.release()
    lease.release()
    assert ep.ongoing == 0 and reg.load("general").ongoing == 0


# --- choosing a deployment with set load counts ------------------------------------------------------------
def _chooser(**router: Any) -> tuple[DeploymentChooser, StaticRegistry]:
    fleet = FleetConfig.from_dict(fleet_dict(**router))
    reg = StaticRegistry({})
    for d in fleet.deployments:
        reg.load(d.name).endpoints = [Endpoint(d.name, "r0", f"http://{d.name}")]
    return DeploymentChooser(fleet, reg, TokenCounter()), reg


def _busy(reg: StaticRegistry, name: str, n: int) -> None:
    reg.load(name).ongoing = n
    reg.load(name).endpoints[0].ongoing = n


def test_choose_deployment_follows_load() -> None:
    chooser, reg = _chooser()  # max_ongoing 4, queued 4, ratio 0.5: soft limit 2, hard limit 8
    facts = facts_of(chat("hello"))
    assert chooser.choose_deployment("code", facts)[0] == "coder"
    _busy(reg, "coder", 2)
    model, candidates, reason, spill = chooser.choose_deployment("code", facts)
    assert (model, spill) == ("general", "saturated") and "coder:saturated" in reason
    assert candidates == ["coder", "general"]
    _busy(reg, "general", 5)
    model, _, reason, _ = chooser.choose_deployment("code", facts)
    assert model == "coder" and reason.endswith("(all saturated: least loaded)"), "2/8 beats 5/8"
    _busy(reg, "coder", 8)
    _busy(reg, "general", 8)
    with pytest.raises(OverloadedError):
        chooser.choose_deployment("code", facts)
    _busy(reg, "coder", 0)
    _busy(reg, "general", 0)
    reg.load("coder").endpoints = []
    model, _, reason, spill = chooser.choose_deployment("code", facts)
    assert (model, spill) == ("general", "unhealthy") and "coder:down" in reason


def test_choose_deployment_checks_capabilities_first() -> None:
    chooser, _ = _chooser()
    tools = facts_of({**chat("hi"), "tools": [{"type": "function", "function": {"name": "f"}}]})
    capable = chooser.capable("general", tools)
    assert capable[1] == ["general", "moe"], "tiny qwen3 and qwen3_moe have tool parsers"
    huge = facts_of({**chat("word " * 3000), "max_tokens": 100})
    _, capable_names, skipped = chooser.capable("general", huge)
    assert capable_names == [] and skipped == ["general:context", "moe:context"]
    with pytest.raises(InvalidRequestError) as err:
        chooser.choose_deployment("general", huge)
    assert err.value.code == "no_capable_deployment" and err.value.param == "max_tokens"


# --- replica routing parameters: one model per policy ---------------------------------------------------
def test_replica_routing_is_one_parameter_model_per_policy() -> None:
    def fleet_with(routing: dict[str, Any]) -> FleetConfig:
        data = fleet_dict()
        data["deployments"][0]["replica_routing"] = routing
        return FleetConfig.from_dict(data)

    pa = fleet_with({"policy": "prefix_affinity", "max_keys": 128}).deployments[0].replica_routing
    assert pa.policy == "prefix_affinity" and pa.max_keys == 128 and pa.load_guard == 2.0
    assert fleet_with({}).deployments[0].replica_routing.policy == "least_loaded"
    with pytest.raises(ConfigError, match=r"replica_routing.*load_guard"):
        fleet_with({"policy": "round_robin", "load_guard": 3.0})
    with pytest.raises(ConfigError, match="replica_routing"):
        fleet_with({"policy": "random"})


# --- signals: one contract, one registry ------------------------------------------------------------------
def test_every_registered_family_follows_the_contract() -> None:
    from serve.router.classify.registry import FamilyOptions

    view = RequestView()
    for make in SIGNAL_FAMILIES:
        family = make(FamilyOptions())
        assert isinstance(family.name, str) and isinstance(family.decides, bool)
        assert family.detect(view, SignalContext()) == [], f"{family.name} fires on an empty request"


def test_a_new_signal_family_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    class Haiku:
        name = "haiku"
        decides = False

        def detect(self, view: RequestView, ctx: SignalContext) -> list[Signal]:
            return [Signal(self.name, "math", 5.0, "haiku form")] if "haiku" in view.last.lowered else []

    import serve.router.classify.pipeline as pipeline

    monkeypatch.setattr(pipeline, "SIGNAL_FAMILIES", (*SIGNAL_FAMILIES, lambda o: Haiku()))
    c = Classifier(options={"learned": False})
    result = c.classify(chat("a haiku about the sea"))
    assert result.task == "math" and "haiku form" in result.reason
    scoped = c.classify({"messages": [{"role": "user", "content": "a haiku please"},
                                      {"role": "assistant", "content": "ok"},
                                      {"role": "user", "content": "thanks, and the weather?"}]})
    assert all(s.scope == "last" for s in scoped.signals if s.name == "haiku")
