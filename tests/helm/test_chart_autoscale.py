"""The chart's side of issue 16: autoscaling settings carried to Serve, the engine secret, the NetworkPolicy."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.helm.conftest import Helm, by_kind, one


def _docs(helm: Helm, *extra: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(helm.template("default", extra=tuple(extra))) if d]


def _pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cluster = one(docs, "RayService")["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]


def test_autoscaling_signal_and_delays_reach_the_serve_config(helm: Helm) -> None:
    deployment = {"name": "m", "variant": "qwen2.5-7b-instruct", "accelerator": {"type": "gpu", "count": 1},
                  "autoscaling": {"min_replicas": 0, "max_replicas": 3, "signal": "kv_usage", "target": 0.6,
                                  "downscale_to_zero_delay_s": 900}}
    docs = _docs(helm, "--set-json", "fleet.deployments=" + json.dumps([deployment]))
    serve_config = yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])
    auto = serve_config["applications"][0]["args"]["fleet"]["deployments"][0]["autoscaling"]
    assert (auto["signal"], auto["target"], auto["min_replicas"], auto["downscale_to_zero_delay_s"]) == (
        "kv_usage", 0.6, 0, 900)
    from serve.config import FleetConfig
    from serve.deployments import autoscaling_config

    fleet = FleetConfig.from_dict(serve_config["applications"][0]["args"]["fleet"], check_paths=False)
    policy = autoscaling_config(fleet.deployments[0])["policy"]  # what the app builder gives Serve
    assert policy["policy_kwargs"]["signal"] == "kv_usage" and policy["policy_kwargs"]["target"] == 0.6


def test_bad_autoscaling_values_fail_naming_the_field(helm: Helm) -> None:
    r = helm.run(*helm.template_args([], monitoring=False,
                                     extra=("--set", "fleet.deployments[0].autoscaling.signal=latency")))
    assert r.returncode != 0 and "signal" in r.stderr


def test_engine_secret_only_by_reference_on_every_ray_pod(helm: Helm) -> None:
    assert all("QWEN_SERVE_ENGINE_SECRET" not in str(p) for p in _pods(helm.docs("default")))
    docs = _docs(helm, "--set", "engineSecret.existingSecret=qwen-engine")
    for pod in _pods(docs):
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["QWEN_SERVE_ENGINE_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "qwen-engine",
                                                                                "key": "engine-secret"}
        assert "value" not in env["QWEN_SERVE_ENGINE_SECRET"]


def test_network_policy_opens_engine_ports_to_ray_pods_only(helm: Helm) -> None:
    docs = helm.docs("default")
    policy = next(d for d in by_kind(docs, "NetworkPolicy") if d["metadata"]["name"].endswith("-ray"))
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for pod in _pods(docs):
        labels = pod["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items())  # every Ray pod is covered
    rules = policy["spec"]["ingress"]
    any_port = [r for r in rules if "ports" not in r]
    assert len(any_port) == 1 and any_port[0]["from"] == [{"podSelector": {"matchLabels": selector}}]
    opened = {p["port"] for r in rules if "ports" in r for p in r["ports"]}
    assert opened == {"serve", "metrics", 8265, 52365, 10001}  # nothing else from outside the Ray pods
    test_pod = next(d for d in by_kind(docs, "Pod") if d["metadata"]["name"].endswith("-test-openai"))
    assert not all(test_pod["metadata"]["labels"].get(k) == v for k, v in selector.items())
    off = _docs(helm, "--set", "networkPolicy.enabled=false")
    assert not [d for d in by_kind(off, "NetworkPolicy") if d["metadata"]["name"].endswith("-ray")]
