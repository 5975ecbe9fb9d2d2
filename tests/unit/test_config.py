"""Fleet config: one test per bad-config case (asserting the message), profiles, derived values."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from serve.config import (
    PROFILES_DIR,
    ConfigError,
    DeploymentSpec,
    FleetConfig,
    allowed_engine_keys,
    expand_vars,
    fleet_json_schema,
    list_profiles,
    load_fleet,
    load_profile,
)


def dep(name: str = "m", **kw: Any) -> dict[str, Any]:
    """A valid deployment (tiny, CPU) with overrides."""
    base: dict[str, Any] = {"name": name, "tiny": "qwen3", "model_path": f"/nonexistent/{name}"}
    base.update(kw)
    return base


def fleet(*deps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "t", "deployments": list(deps) or [dep()], **top}


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        FleetConfig.from_dict(data, source="fleet.yaml")
    return str(err.value)


@pytest.fixture(autouse=True)
def _models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_SERVE_MODELS", str(tmp_path / "tiny"))


# ---------------------------------------------------------------- bad configs, one per case


def test_unknown_variant_lists_suggestions() -> None:
    msg = error_of(fleet({"name": "a", "variant": "qwen2.5-7b"}))
    assert "deployments[a].variant: unknown Qwen variant 'qwen2.5-7b'; did you mean: qwen2.5-7b-instruct" in msg


def test_duplicate_deployment_names() -> None:
    msg = error_of(fleet(dep("twin"), dep("twin"), dep("other")))
    assert "duplicate deployment names: twin; each deployment needs its own name" in msg


def test_tensor_parallel_larger_than_gpus() -> None:
    d = {"name": "big", "variant": "qwen2.5-72b-instruct",
         "accelerator": {"type": "gpu", "count": 4}, "engine": {"tensor_parallel_size": 8}}
    assert "tensor_parallel_size=8 needs 8 GPUs but accelerator.count=4" in error_of(fleet(d))


def test_tensor_times_data_parallel_larger_than_gpus() -> None:
    d = {"name": "moe", "variant": "qwen3-30b-a3b", "accelerator": {"type": "gpu", "count": 4},
         "engine": {"tensor_parallel_size": 2, "data_parallel_size": 4}}
    assert "tensor_parallel_size=2 x data_parallel_size=4 needs 8 GPUs but accelerator.count=4" in error_of(fleet(d))


def test_missing_model_path() -> None:
    msg = error_of(fleet({"name": "local", "model_path": "/definitely/not/here"}))
    assert "deployment 'local': model_path /definitely/not/here does not exist" in msg


def test_relative_missing_model_path() -> None:
    msg = error_of(fleet({"name": "local", "model_path": "./models/nope"}))
    assert "model_path ./models/nope does not exist" in msg


def test_neither_variant_nor_model_path() -> None:
    msg = error_of(fleet({"name": "empty"}))
    assert "set `variant` (a catalog name) or `model_path`" in msg


def test_unknown_engine_key_lists_allowed() -> None:
    if allowed_engine_keys() is None:
        pytest.skip("vLLM not importable: engine keys are not checked")
    msg = error_of(fleet(dep(engine={"max_model_length": 2048})))
    assert "unknown engine keys ['max_model_length']; allowed (vLLM engine/frontend args):" in msg
    assert "max_model_len" in msg and "tool_call_parser" in msg


def test_gpu_engine_settings_on_cpu() -> None:
    msg = error_of(fleet(dep(engine={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5})))
    assert "engine settings ['gpu_memory_utilization', 'tensor_parallel_size'] need GPUs but accelerator.type is cpu" in msg


def test_preset_on_cpu() -> None:
    d = {"name": "moe", "variant": "qwen3-30b-a3b", "preset": "h200x4", "accelerator": {"type": "cpu"}}
    assert "preset 'h200x4' is a GPU layout but accelerator.type is cpu" in error_of(fleet(d))


def test_quantization_on_cpu() -> None:
    d = {"name": "q", "variant": "qwen3-8b", "quantization": "fp8"}
    assert "quantization 'fp8' needs a GPU but accelerator.type is cpu" in error_of(fleet(d))


def test_fp8_on_a100() -> None:
    d = {"name": "q", "variant": "qwen3-8b", "quantization": "fp8",
         "accelerator": {"type": "gpu", "gpu_type": "A100-80GB"}}
    assert "fp8 needs compute capability >= 8.9 but A100-80GB has 8.0" in error_of(fleet(d))


def test_fp8_on_t4() -> None:
    d = {"name": "q", "variant": "qwen3-0.6b", "quantization": "fp8", "accelerator": {"type": "gpu", "gpu_type": "T4"}}
    assert "fp8 needs compute capability >= 8.9 but T4 has 7.5" in error_of(fleet(d))


def test_bfloat16_on_t4() -> None:
    d = {"name": "q", "variant": "qwen2.5-0.5b-instruct", "accelerator": {"type": "gpu", "gpu_type": "T4"},
         "engine": {"dtype": "bfloat16"}}
    assert "dtype bfloat16 needs compute capability >= 8.0 but T4 has 7.5; use dtype: float16" in error_of(fleet(d))


def test_quantization_the_variant_does_not_publish() -> None:
    d = {"name": "q", "variant": "qwen2.5-math-7b-instruct", "quantization": "awq", "accelerator": {"type": "gpu"}}
    assert "qwen2.5-math-7b-instruct has no awq checkpoint; available: none" in error_of(fleet(d))


def test_unknown_preset() -> None:
    d = {"name": "q", "variant": "qwen3-30b-a3b", "preset": "h200x3"}
    assert "qwen3-30b-a3b has no preset 'h200x3'; available: h200x1, h200x4, h200x8" in error_of(fleet(d))


def test_model_does_not_fit_the_gpus() -> None:
    d = {"name": "huge", "variant": "qwen3-235b-a22b", "accelerator": {"type": "gpu", "count": 1, "gpu_type": "H200"}}
    msg = error_of(fleet(d))
    assert "qwen3-235b-a22b (bf16) does not fit" in msg and "needs about 4 H200 GPUs" in msg


def test_tensor_parallel_must_divide_heads() -> None:
    d = {"name": "q", "variant": "qwen2.5-0.5b-instruct", "accelerator": {"type": "gpu", "count": 4},
         "engine": {"tensor_parallel_size": 4}}
    assert "tensor_parallel_size=4 does not divide the 14 attention heads" in error_of(fleet(d))


def test_context_longer_than_variant_maximum() -> None:
    d = {"name": "q", "variant": "qwen2.5-math-7b-instruct", "engine": {"max_model_len": 8192}}
    assert "max_model_len=8192 is longer than qwen2.5-math-7b-instruct's maximum context (4096 tokens)" in error_of(fleet(d))


def test_unknown_gpu_type() -> None:
    d = {"name": "q", "variant": "qwen3-8b", "accelerator": {"type": "gpu", "gpu_type": "V100"}}
    assert "deployments[q].accelerator.gpu_type: unknown gpu_type 'V100'; known: H200" in error_of(fleet(d))


def test_gpu_type_on_cpu() -> None:
    msg = error_of(fleet(dep(accelerator={"type": "cpu", "gpu_type": "H100"})))
    assert "gpu_type=H100 given but accelerator.type is cpu" in msg


def test_gpu_fraction_below_memory_utilization() -> None:
    d = {"name": "q", "variant": "qwen2.5-7b-instruct",
         "accelerator": {"type": "gpu", "gpu_type": "H200", "gpu_fraction": 0.2},
         "engine": {"gpu_memory_utilization": 0.5}}
    assert "accelerator.gpu_fraction=0.2 needs engine gpu_memory_utilization <= 0.2 (got 0.5)" in error_of(fleet(d))


def test_gpu_fraction_reserves_a_share_of_one_gpu_per_replica() -> None:
    from serve.config import FleetConfig
    from serve.deployments import build_llm_config

    d = {"name": "q", "variant": "qwen2.5-7b-instruct", "replicas": 4,
         "accelerator": {"type": "gpu", "gpu_fraction": 0.25}, "engine": {"gpu_memory_utilization": 0.2}}
    cfg = FleetConfig.from_dict(fleet(d), check_paths=False)
    llm = build_llm_config(cfg.deployments[0], cfg)
    assert llm.placement_group_config == {"bundles": [{"CPU": 1, "GPU": 0.25}]}
    assert llm.runtime_env["env_vars"]["VLLM_RAY_PER_WORKER_GPUS"] == "0.25"
    whole = {**d, "accelerator": {"type": "gpu"}}
    plain = build_llm_config(FleetConfig.from_dict(fleet(whole), check_paths=False).deployments[0])
    assert "VLLM_RAY_PER_WORKER_GPUS" not in ((plain.runtime_env or {}).get("env_vars") or {})


def test_replicas_and_autoscaling_both_given() -> None:
    msg = error_of(fleet(dep(replicas=2, autoscaling={"min_replicas": 1, "max_replicas": 3})))
    assert "set either replicas=2 or autoscaling, not both" in msg


def test_autoscaling_max_below_min() -> None:
    msg = error_of(fleet(dep(autoscaling={"min_replicas": 3, "max_replicas": 2})))
    assert "deployments[m].autoscaling: max_replicas=2 is below min_replicas=3" in msg


def test_tiny_needs_model_path() -> None:
    assert "`tiny` needs a `model_path`" in error_of(fleet({"name": "t", "variant": "qwen3-0.6b", "tiny": "qwen3"}))


def test_unset_environment_variable_in_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWEN_NO_SUCH_VAR", raising=False)
    msg = error_of(fleet(dep(model_path="${QWEN_NO_SUCH_VAR}/m")))
    assert "model_path: environment variable QWEN_NO_SUCH_VAR is not set" in msg


def test_invalid_deployment_name() -> None:
    assert "deployments[bad name].name: String should match pattern" in error_of(fleet(dep("bad name")))


def test_typo_in_a_key_is_an_error() -> None:
    msg = error_of(fleet(dep(replica=2)))
    assert "fleet.yaml: deployments[m].replica: Extra inputs are not permitted" in msg


def test_task_candidate_that_does_not_exist() -> None:
    msg = error_of(fleet(dep("a"), router={"tasks": {"code": {"candidates": ["a", "ghost"]}}}))
    assert "router.tasks.code: candidate(s) ['ghost'] are not deployments; known: ['a']" in msg


def test_task_without_candidates() -> None:
    msg = error_of(fleet(dep("a"), router={"tasks": {"math": {"candidates": []}}}))
    assert "router.tasks.math: no candidates (only `vision` may be empty)" in msg


def test_alias_colliding_with_a_deployment() -> None:
    msg = error_of(fleet(dep("auto")))
    assert "router.aliases: alias 'auto' collides with the deployment of that name" in msg


def test_alias_to_unknown_task() -> None:
    msg = error_of(fleet(dep(), router={"aliases": {"qwen-poetry": "poetry"}}))
    assert "router.aliases.qwen-poetry: unknown task 'poetry'" in msg


def test_default_task_not_a_task() -> None:
    msg = error_of(fleet(dep(), router={"default_task": "chitchat"}))
    assert "router.default_task 'chitchat' is not a task" in msg


def test_unknown_sampling_key() -> None:
    msg = error_of(fleet(dep(), router={"tasks": {"general": {"candidates": ["m"], "sampling": {"temp": 0.1}}}}))
    assert "router.tasks.general.sampling: unknown sampling keys ['temp']" in msg


def test_require_api_key_without_a_source() -> None:
    msg = error_of(fleet(dep(), security={"require_api_key": True}))
    assert "require_api_key is true but neither api_keys_env nor api_keys_file is set" in msg


def test_lora_adapter_directory_missing() -> None:
    msg = error_of(fleet(dep(lora={"adapters": {"sql": "/nonexistent/adapter"}})))
    assert "adapter 'sql': directory /nonexistent/adapter does not exist" in msg


def test_lora_adapter_name_invalid(tmp_path: Path) -> None:
    msg = error_of(fleet(dep(lora={"adapters": {"a:b": str(tmp_path)}})))
    assert "invalid adapter name 'a:b'" in msg


def test_no_deployments() -> None:
    assert "deployments: List should have at least 1 item" in error_of({"name": "t", "deployments": []})


def test_several_problems_reported_together() -> None:
    msg = error_of(fleet(dep(replica=1), port=0))
    assert "(2 problem(s))" in msg and "port:" in msg and "replica" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_fleet(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("deployments: [\n")
    with pytest.raises(ConfigError, match=f"{path}: invalid YAML"):
        load_fleet(path)


def test_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("name: t\ndeployments:\n  - name: x\n    variant: qwen9\n")
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    assert f"{path}: deployments[x].variant: unknown Qwen variant 'qwen9'" in str(err.value)


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'demoo'; profiles: cluster, cpu-small, demo, single-h200"):
        load_profile("demoo")


# ---------------------------------------------------------------- profiles


def test_profiles_dir_and_list() -> None:
    assert Path(__file__).resolve().parents[2] / "deploy" / "profiles" == PROFILES_DIR
    assert set(list_profiles()) >= {"demo", "cpu-small", "single-h200", "cluster"}


@pytest.mark.parametrize("name", ["demo", "cpu-small", "single-h200", "cluster"])
def test_every_profile_loads_and_round_trips(name: str) -> None:
    cfg = load_profile(name)
    assert cfg.name == name
    again = FleetConfig.from_dict(cfg.model_dump(mode="json"), check_paths=False)
    assert again == cfg
    for task, policy in cfg.router.tasks.items():
        assert policy.candidates or task == "vision"


def test_demo_profile(tmp_path: Path) -> None:
    cfg = load_profile("demo")
    assert [d.name for d in cfg.deployments] == ["qwen3-general", "qwen-coder", "qwen3-moe", "qwen3-embedding"]
    emb = cfg.deployment("qwen3-embedding")
    assert emb.resolved_runner == "embed" and emb.engine_kwargs()["convert"] == "embed"
    general = cfg.deployment("qwen3-general")
    assert general.model_source == str(tmp_path / "tiny" / "qwen3-general")
    assert general.engine_kwargs() == {"reasoning_parser": "qwen3", "tool_call_parser": "hermes",
                                       "enable_auto_tool_choice": True, "max_model_len": 2048,
                                       "enforce_eager": True, "dtype": "bfloat16"}
    assert general.capabilities.thinking and general.effective_max_ongoing_requests == 32
    assert general.effective_max_queued_requests == 64
    assert cfg.deployment("qwen-coder").tiny == "qwen2" and not cfg.deployment("qwen-coder").capabilities.thinking
    assert cfg.router.tasks["math"].candidates == ["qwen3-general", "qwen3-moe"]
    assert cfg.router.tasks["math"].system_prompt == "Please reason step by step, and put your final answer within \\boxed{}."
    assert cfg.router.tasks["reasoning"].enable_thinking is True
    assert cfg.router.aliases == {"auto": None, "qwen-code": "code", "qwen-math": "math", "qwen-reasoning": "reasoning",
                                  "qwen-sql": "qwen3-general:tiny-sql"}
    assert general.lora is not None and general.lora.tiny and "tiny-sql" in general.lora.adapters
    assert general.lora.runtime


def test_demo_profile_default_models_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWEN_SERVE_MODELS")
    src = load_profile("demo").deployment("qwen3-moe").model_source
    assert src == str(Path.home() / ".cache/qwen-serve/tiny/qwen3-moe")


def test_single_h200_shares_fit_one_gpu() -> None:
    cfg = load_profile("single-h200")
    shares = [d.engine_kwargs()["gpu_memory_utilization"] for d in cfg.deployments]
    assert sum(shares) <= 0.95
    assert all(d.accelerator.gpu_fraction == d.engine_kwargs()["gpu_memory_utilization"] for d in cfg.deployments)
    moe = cfg.deployment("qwen3-30b-a3b")
    assert moe.model_source == "Qwen/Qwen3-30B-A3B-FP8" and moe.engine_kwargs()["quantization"] == "fp8"


def test_cluster_profile_presets_and_keys() -> None:
    cfg = load_profile("cluster")
    big = cfg.deployment("qwen3-235b-a22b")
    assert big.accelerator.count == 8 and big.accelerator.gpu_type == "H200"
    kwargs = big.engine_kwargs()
    assert kwargs["tensor_parallel_size"] == 8 and kwargs["enable_expert_parallel"] is True
    assert cfg.deployment("qwen3-30b-a3b").engine_kwargs()["data_parallel_size"] == 4
    assert cfg.security.require_api_key and cfg.security.api_keys_env
    assert all(d.autoscaling is not None for d in cfg.deployments)


# ---------------------------------------------------------------- derived values


def test_preset_fills_the_accelerator() -> None:
    spec = DeploymentSpec(name="m", variant="Qwen/Qwen3-235B-A22B", preset="h200x4")
    assert spec.variant == "qwen3-235b-a22b"
    assert (spec.accelerator.type, spec.accelerator.count, spec.accelerator.gpu_type) == ("gpu", 4, "H200")
    assert spec.model_source == "Qwen/Qwen3-235B-A22B-FP8"
    assert spec.engine_kwargs()["quantization"] == "fp8"


def test_quantization_kernel_follows_gpu_capability() -> None:
    fast = DeploymentSpec(name="m", variant="qwen2.5-7b-instruct", quantization="awq",
                          accelerator={"type": "gpu", "gpu_type": "L4"})
    slow = DeploymentSpec(name="m", variant="qwen2.5-7b-instruct", quantization="awq",
                          accelerator={"type": "gpu", "gpu_type": "T4"}, engine={"dtype": "float16"})
    assert fast.engine_kwargs()["quantization"] == "awq_marlin"
    assert slow.engine_kwargs()["quantization"] == "awq"
    assert slow.model_source == "Qwen/Qwen2.5-7B-Instruct-AWQ"


def test_cpu_drops_gpu_only_keys_from_the_preset() -> None:
    spec = DeploymentSpec(name="m", variant="qwen3-8b", tiny="qwen3", model_path="/nonexistent/x",
                          engine={"max_model_len": 1024})
    assert "gpu_memory_utilization" not in spec.engine_kwargs() and spec.context_length == 1024


def test_overrides_win_over_the_preset() -> None:
    spec = DeploymentSpec(name="m", variant="qwen3-8b", accelerator={"type": "gpu"},
                          engine={"max_model_len": 8192, "reasoning_parser": None, "max_num_seqs": 48})
    kwargs = spec.engine_kwargs()
    assert kwargs["max_model_len"] == 8192 and kwargs["reasoning_parser"] is None
    assert spec.effective_max_ongoing_requests == 48 and spec.effective_max_queued_requests == 96


def test_effective_limits_default_per_accelerator() -> None:
    gpu = DeploymentSpec(name="g", variant="qwen3-8b", accelerator={"type": "gpu"})
    cpu = DeploymentSpec(name="c", tiny="qwen3", model_path="/nonexistent/c")
    assert gpu.effective_max_ongoing_requests == 256 and cpu.effective_max_ongoing_requests == 64
    assert cpu.effective_max_queued_requests == 128
    assert gpu.model_source == "Qwen/Qwen3-8B" and gpu.context_length == 32768


def test_capabilities_inferred_from_tiny_and_overridden() -> None:
    assert DeploymentSpec(name="a", tiny="qwen2_5_vl", model_path="/x/a").capabilities.vision
    tools_only = DeploymentSpec(name="b", tiny="qwen2", model_path="/x/b").capabilities
    assert tools_only.tools and not tools_only.thinking
    over = DeploymentSpec(name="c", tiny="qwen3", model_path="/x/c", capabilities={"tools": False})
    assert not over.capabilities.tools and not over.capabilities.thinking
    assert DeploymentSpec(name="d", tiny="qwen3", model_path="/x/d").engine_kwargs()["reasoning_parser"] == "qwen3"


def test_hub_id_model_path_is_not_checked_on_disk() -> None:
    spec = DeploymentSpec(name="m", model_path="Qwen/Qwen2.5-0.5B-Instruct")
    assert spec.model_source == "Qwen/Qwen2.5-0.5B-Instruct" and spec.resolved_variant() is None


def test_existing_local_model_path_with_home_and_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models" / "m").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MODELS_SUBDIR", "models")
    spec = DeploymentSpec(name="m", model_path="~/${MODELS_SUBDIR}/m")
    assert spec.model_source == str(tmp_path / "models" / "m")


def test_expand_vars_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", "1")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_X", raising=False)
    assert expand_vars("${A}/${UNSET_X:-d}/${EMPTY:-e}/${A:-z}") == "1/d/e/1"


def test_check_paths_false_skips_filesystem() -> None:
    data = fleet({"name": "local", "model_path": "/definitely/not/here"})
    assert FleetConfig.from_dict(data, check_paths=False).deployment("local").model_source == "/definitely/not/here"


def test_router_tasks_default_from_capabilities() -> None:
    cfg = FleetConfig.from_dict(fleet(
        dep("coder", tiny="qwen2"), {"name": "vl", "variant": "qwen2.5-vl-3b-instruct", "accelerator": {"type": "gpu"}},
        dep("thinker", tiny="qwen3")))
    tasks = {k: v.candidates for k, v in cfg.router.tasks.items()}
    assert tasks["vision"] == ["vl"]
    assert tasks["reasoning"] == ["thinker"]
    assert tasks["general"][0] in ("coder", "thinker") and "vl" in tasks["general"]
    assert set(tasks) == {"code", "math", "vision", "reasoning", "general"}


def test_deployment_lookup() -> None:
    cfg = FleetConfig.from_dict(fleet(dep("a")))
    assert cfg.deployment("a").name == "a"
    with pytest.raises(KeyError, match="no deployment 'b'"):
        cfg.deployment("b")


def test_json_schema_is_self_contained_and_validates_profiles() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = fleet_json_schema()
    refs = [s for s in json.dumps(schema).split('"') if s.startswith(("http://", "https://"))]
    assert not refs
    assert "capabilities" in schema["$defs"]["DeploymentSpec"]["properties"]
    for name in list_profiles():
        import yaml

        data = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())
        jsonschema.validate(data, schema)
    bad = copy.deepcopy(data)
    bad["deployments"][0]["replica"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# ---------------------------------------------------------------- embedding / score models, run-time LoRA


def test_embedding_deployment_runner_and_engine_kwargs() -> None:
    cfg = FleetConfig.from_dict(fleet(dep(), dep("emb", tiny="qwen3_embedding")))
    emb = cfg.deployment("emb")
    assert emb.resolved_runner == "embed" and emb.tasks == []
    assert emb.engine_kwargs() == {"runner": "pooling", "convert": "embed",
                                   "pooler_config": {"pooling_type": "LAST", "use_activation": True}}
    assert "emb" not in cfg.router.tasks["general"].candidates  # filled candidates are generate models only
    assert cfg.deployment("m").resolved_runner == "generate"


def test_reranker_variant_and_tiny_reranker() -> None:
    cfg = FleetConfig.from_dict(fleet(dep(), dep("rr", tiny="qwen3_reranker"),
                                      {"name": "rr8", "variant": "Qwen/Qwen3-Reranker-8B"}), check_paths=False)
    tiny = cfg.deployment("rr").engine_kwargs()
    assert cfg.deployment("rr").resolved_runner == cfg.deployment("rr8").resolved_runner == "score"
    assert tiny["hf_overrides"]["is_original_qwen3_reranker"] is True and "<Document>" in tiny["chat_template"]
    assert cfg.deployment("rr8").engine_kwargs()["max_model_len"] == 32768


def test_explicit_runner_for_a_local_model() -> None:
    cfg = FleetConfig.from_dict(fleet(dep(), {"name": "e", "model_path": "org/some-embedder", "runner": "embed"}))
    assert cfg.deployment("e").engine_kwargs() == {"runner": "pooling", "convert": "embed"}


def test_runner_contradicting_the_variant_is_refused() -> None:
    msg = error_of(fleet({"name": "e", "variant": "qwen3-embedding-0.6b", "runner": "generate"}))
    assert "deployments[e]: deployment 'e': runner 'generate' contradicts variant qwen3-embedding-0.6b" in msg


def test_embedding_model_as_chat_candidate_is_refused() -> None:
    data = fleet(dep(), dep("emb", tiny="qwen3_embedding"), router={"tasks": {"general": {"candidates": ["m", "emb"]}}})
    msg = error_of(data)
    assert "router.tasks.general: emb (embed) cannot serve chat or completions" in msg


def test_lora_on_an_embedding_model_is_refused() -> None:
    msg = error_of(fleet(dep(), dep("emb", tiny="qwen3_embedding", lora={"adapters": {}})))
    assert "LoRA adapters need a generate model; this is a 'embed' model" in msg


def test_embedding_only_fleet_is_valid() -> None:
    cfg = FleetConfig.from_dict(fleet(dep("emb", tiny="qwen3_embedding")))
    assert all(not p.candidates for p in cfg.router.tasks.values())


def test_runtime_lora_sets_the_engine_env() -> None:
    from serve.deployments import build_llm_config

    cfg = FleetConfig.from_dict(fleet(dep(lora={"runtime": True})))
    assert cfg.deployments[0].lora is not None and cfg.deployments[0].lora.runtime
    llm = build_llm_config(cfg.deployments[0], cfg)
    assert llm.runtime_env["env_vars"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert llm.engine_kwargs["enable_lora"] is True


def test_admin_keys_and_pooling_limit_fields() -> None:
    cfg = FleetConfig.from_dict(fleet(security={"admin_keys_env": "ADMIN", "limits": {"max_pooling_inputs": 16}}))
    assert cfg.security.admin_keys_env == "ADMIN" and cfg.security.limits.max_pooling_inputs == 16
    msg = error_of(fleet(security={"limits": {"max_pooling_inputs": 0}}))
    assert "security.limits.max_pooling_inputs" in msg
