"""Tiny LoRA adapters: built with peft, wired into vLLM's static adapters, addressable through the router."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serve.config import ConfigError, FleetConfig
from serve.lora import build_tiny_lora, is_adapter, lora_modules


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


def lora_fleet(models: Path, **router: Any) -> dict[str, Any]:
    return {
        "name": "lora",
        "deployments": [{
            "name": "general", "tiny": "qwen3", "model_path": str(models / "general"),
            "accelerator": {"type": "cpu"}, "engine": {"max_model_len": 1024},
            "lora": {"tiny": True, "max_lora_rank": 8, "adapters": {"tiny-sql": str(models / "lora-tiny-sql")}},
        }],
        "router": {"tasks": {"general": {"candidates": ["general"]}},
                   "aliases": {"auto": None, "qwen-sql": "general:tiny-sql"}, **router},
    }


@pytest.fixture(scope="module")
def built(models: Path) -> list[Path]:
    from serve.tiny import build_fleet_tiny_models

    return build_fleet_tiny_models(FleetConfig.from_dict(lora_fleet(models)))


def test_fleet_build_makes_base_then_adapter(built: list[Path], models: Path) -> None:
    assert built == [models / "general", models / "lora-tiny-sql"]
    assert is_adapter(built[1])
    cfg = json.loads((built[1] / "adapter_config.json").read_text())
    assert cfg["r"] == 8
    assert cfg["peft_type"] == "LORA"
    assert set(cfg["target_modules"]) >= {"q_proj", "v_proj", "down_proj"}
    assert cfg["base_model_name_or_path"] == str(models / "general")


def test_adapter_is_reused_not_rebuilt(built: list[Path], models: Path) -> None:
    weights = built[1] / "adapter_model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_tiny_lora(models / "general", built[1]) == built[1]
    assert weights.stat().st_mtime_ns == before


def test_adapter_weights_are_random_and_match_the_base(built: list[Path]) -> None:
    from safetensors import safe_open

    with safe_open(str(built[1] / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        lora_b = f.get_tensor(next(k for k in keys if "q_proj.lora_B" in k))
        lora_a = f.get_tensor(next(k for k in keys if "q_proj.lora_A" in k))
    assert lora_b.abs().sum() > 0  # not peft's default zero init: the adapter changes the output
    assert tuple(lora_a.shape) == (8, 128)  # rank x hidden_size of the tiny qwen3
    assert len([k for k in keys if "lora_A" in k]) == 2 * 7  # 2 layers x 7 projections


def test_missing_adapter_dir_is_fine_only_for_tiny_adapters(tmp_path: Path) -> None:
    data = lora_fleet(tmp_path)
    FleetConfig.from_dict(data)  # tiny: built later by `qwen-serve up`
    data["deployments"][0]["lora"]["tiny"] = False
    with pytest.raises(ConfigError, match="adapter 'tiny-sql': directory .* does not exist"):
        FleetConfig.from_dict(data)


def test_engine_gets_static_adapters_under_the_routed_id(tmp_path: Path) -> None:
    from serve.deployments import build_llm_config

    fleet = FleetConfig.from_dict(lora_fleet(tmp_path))
    engine = build_llm_config(fleet.deployments[0], fleet).engine_kwargs
    assert engine["enable_lora"] is True
    assert engine["max_lora_rank"] == 8
    assert engine["lora_modules"] == [{"name": "general:tiny-sql", "path": str(tmp_path / "lora-tiny-sql"),
                                       "base_model_name": "general"}]
    assert lora_modules("b", {"x": "/p"})[0]["name"] == "b:x"


def test_adapter_alias_and_id_resolve_unknown_adapter_is_404(tmp_path: Path) -> None:
    from serve.router.policy import DeploymentChooser
    from serve.router.protocol import ModelNotFoundError

    fleet = FleetConfig.from_dict(lora_fleet(tmp_path))
    policy = DeploymentChooser(fleet, registry=None, tokens=None)  # type: ignore[arg-type]
    assert policy.resolve_model("general:tiny-sql") == ("general", "tiny-sql", None)
    assert policy.resolve_model("qwen-sql") == ("general", "tiny-sql", None)
    assert policy.resolve_model("auto") == (None, None, "")
    assert "general:tiny-sql" in policy.model_ids()
    with pytest.raises(ModelNotFoundError) as err:
        policy.resolve_model("general:nope")
    assert err.value.status == 404


def test_alias_to_unknown_adapter_is_a_config_error(tmp_path: Path) -> None:
    data = lora_fleet(tmp_path, aliases={"qwen-sql": "general:nope"})
    with pytest.raises(ConfigError, match="router.aliases.qwen-sql: unknown task 'general:nope'"):
        FleetConfig.from_dict(data)
