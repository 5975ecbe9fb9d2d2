"""The Qwen catalog: data validity, lookups, sizing against hand-checked numbers, presets, report, HF configs."""

from __future__ import annotations

import json

import pytest

from serve.catalog import (
    TASKS,
    Catalog,
    EnginePreset,
    Layout,
    UnknownGpuError,
    UnknownVariantError,
    build_catalog,
    get_gpu,
    get_variant,
    gpus_needed,
    hf_config,
    kv_bytes_per_token,
    load_catalog,
    max_kv_tokens,
    models_table,
    param_counts,
    weight_bytes,
    write_hf_config,
)
from serve.catalog.sizing import check_fit, weight_bytes_per_gpu

GIB = 1024**3

REQUIRED = [
    *(f"qwen2.5-{s}-instruct" for s in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")),
    *(f"qwen2.5-coder-{s}-instruct" for s in ("1.5b", "7b", "32b")),
    *(f"qwen2.5-math-{s}-instruct" for s in ("1.5b", "7b", "72b")),
    *(f"qwen2.5-vl-{s}-instruct" for s in ("3b", "7b", "72b")),
    *(f"qwen3-{s}" for s in ("0.6b", "1.7b", "4b", "8b", "14b", "32b")),
    "qwen3-30b-a3b",
    "qwen3-235b-a22b",
    *(f"qwen3-embedding-{s}" for s in ("0.6b", "4b", "8b")),
    *(f"qwen3-reranker-{s}" for s in ("0.6b", "4b", "8b")),
]


# ---------------------------------------------------------------- data


def test_catalog_has_every_required_variant() -> None:
    assert set(REQUIRED) <= set(load_catalog().names)
    assert len(load_catalog().variants) == len(REQUIRED)


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


@pytest.mark.parametrize("name", REQUIRED)
def test_every_variant_is_consistent(name: str) -> None:
    v = get_variant(name)
    arch = v.architecture
    assert v.hub_id.startswith("Qwen/")
    assert arch.num_attention_heads % arch.num_key_value_heads == 0
    assert set(v.tasks) <= set(TASKS)
    assert bool(v.tasks) == (v.runner == "generate")
    assert v.engine.max_model_len == v.context_length
    assert (v.kind == "moe") == (arch.num_experts > 0)
    if v.runner != "generate":
        assert v.engine.runner == "pooling" and v.engine.reasoning_parser is None and arch.qk_norm
    elif v.family in ("qwen3", "qwen3-moe"):
        assert v.engine.reasoning_parser == "qwen3" and v.capabilities.thinking
        assert arch.qk_norm and not arch.attention_bias
    else:
        assert v.engine.reasoning_parser is None and arch.attention_bias
    for q in v.quantizations:
        assert q.hub_id.startswith(v.hub_id + "-")


def test_engine_presets_follow_the_families() -> None:
    # Qwen2.5 / Qwen3 emit hermes-style <tool_call>{json}</tool_call>; Math and VL templates have no tools.
    assert get_variant("qwen2.5-7b-instruct").engine.tool_call_parser == "hermes"
    assert get_variant("qwen2.5-coder-7b-instruct").engine.tool_call_parser == "hermes"
    assert get_variant("qwen3-8b").engine.to_engine_kwargs() == {
        "reasoning_parser": "qwen3", "tool_call_parser": "hermes", "enable_auto_tool_choice": True,
        "max_model_len": 32768,
    }
    math = get_variant("qwen2.5-math-7b-instruct")
    assert math.engine.tool_call_parser is None and not math.capabilities.tools and math.context_length == 4096
    vl = get_variant("qwen2.5-vl-7b-instruct")
    assert vl.capabilities.vision and "image" in vl.modalities and vl.engine.limit_mm_per_prompt == {"image": 4, "video": 1}


def test_architecture_numbers_of_reference_models() -> None:
    a = get_variant("qwen2.5-7b-instruct").architecture
    assert (a.num_hidden_layers, a.hidden_size, a.num_attention_heads, a.num_key_value_heads, a.head_dim,
            a.intermediate_size, a.vocab_size, a.tie_word_embeddings) == (28, 3584, 28, 4, 128, 18944, 152064, False)
    m = get_variant("qwen3-30b-a3b").architecture
    assert (m.num_hidden_layers, m.hidden_size, m.num_attention_heads, m.num_key_value_heads, m.head_dim,
            m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size, m.vocab_size) == (
        48, 2048, 32, 4, 128, 128, 8, 768, 151936)


def test_pooling_variants_carry_the_vllm_pooling_settings() -> None:
    emb = get_variant("Qwen/Qwen3-Embedding-4B")
    assert emb.runner == "embed" and not emb.tasks and not any(emb.capabilities.model_dump().values())
    assert emb.engine.to_engine_kwargs() == {"max_model_len": 32768, "runner": "pooling", "convert": "embed",
                                            "pooler_config": {"pooling_type": "LAST", "use_activation": True}}
    rr = get_variant("qwen3-reranker-0.6b").engine.to_engine_kwargs()
    assert get_variant("qwen3-reranker-0.6b").runner == "score" and rr["runner"] == "pooling"
    assert rr["hf_overrides"] == {"architectures": ["Qwen3ForSequenceClassification"],
                                  "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": True}
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders chat templates
    prompt = env.from_string(rr["chat_template"]).render(
        messages=[{"role": "query", "content": "Q1"}, {"role": "document", "content": "D1"}])
    assert "<Query>: Q1\n<Document>: D1<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    custom = env.from_string(rr["chat_template"]).render(messages=[], instruction="Find code")
    assert "<Instruct>: Find code\n" in custom


def test_a_pooling_variant_cannot_claim_chat_tasks() -> None:
    data = {"families": {"qwen3-embedding": {"kind": "dense", "capabilities": {}, "tasks": ["general"], "runner": "embed",
                               "context_length": 1024, "engine": {"runner": "pooling"},
                               "architecture": {"model_type": "qwen3", "head_dim": 64,
                                                "max_position_embeddings": 1024}}},
            "variants": [{"name": "x", "hub_id": "Qwen/X", "family": "qwen3-embedding",
                          "architecture": {"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 64,
                                           "num_attention_heads": 1, "num_key_value_heads": 1, "vocab_size": 10,
                                           "tie_word_embeddings": True}}]}
    with pytest.raises(ValueError, match="serves no chat task"):
        build_catalog(data)


def test_engine_preset_to_engine_kwargs_drops_none_and_merges_extra() -> None:
    preset = EnginePreset(max_model_len=1024, tool_call_parser="hermes", extra={"enforce_eager": True})
    assert preset.to_engine_kwargs() == {"max_model_len": 1024, "tool_call_parser": "hermes", "enforce_eager": True}
    merged = preset.merged({"max_model_len": 2048, "seed": 1})
    assert merged.max_model_len == 2048 and merged.extra == {"enforce_eager": True, "seed": 1}


def test_auto_tool_choice_needs_a_parser() -> None:
    with pytest.raises(ValueError, match="enable_auto_tool_choice needs a tool_call_parser"):
        EnginePreset(enable_auto_tool_choice=True)


def test_catalog_file_typos_are_errors() -> None:
    doc = {"families": {"qwen3": {"kind": "dense", "capabilities": {}, "tasks": ["general"], "context_length": 1024,
                                  "architecture": {"model_type": "qwen3"}}},
           "variants": [{"name": "x", "hub_id": "Qwen/X", "family": "qwen3", "contxt_length": 5,
                         "architecture": {"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 64,
                                          "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 64,
                                          "vocab_size": 10, "tie_word_embeddings": True,
                                          "max_position_embeddings": 1024}}]}
    with pytest.raises(ValueError, match="contxt_length"):
        build_catalog(doc)


# ---------------------------------------------------------------- lookups


@pytest.mark.parametrize("key", ["qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "qwen/qwen2.5-7b-instruct",
                                 "Qwen2.5-7B-Instruct", " QWEN2.5-7B-INSTRUCT "])
def test_get_by_name_or_hub_id(key: str) -> None:
    assert load_catalog().get(key).name == "qwen2.5-7b-instruct"
    assert key in load_catalog()


def test_unknown_variant_suggests_close_matches() -> None:
    with pytest.raises(UnknownVariantError) as err:
        get_variant("qwen2.5-7b")
    assert isinstance(err.value, KeyError)
    assert "unknown Qwen variant 'qwen2.5-7b'" in str(err.value)
    assert "did you mean: qwen2.5-7b-instruct" in str(err.value)
    assert err.value.suggestions[0] == "qwen2.5-7b-instruct"


def test_unknown_variant_typo_suggestion() -> None:
    with pytest.raises(UnknownVariantError, match="qwen3-30b-a3b"):
        get_variant("qwen3-30b-a3")
    with pytest.raises(UnknownVariantError, match="qwen3-8b"):
        get_variant("qwen3-8")


def test_gpu_lookup_by_alias_and_unknown() -> None:
    assert get_gpu("a100-80g").name == "A100-80GB"
    assert get_gpu("h200").compute_capability == 9.0
    with pytest.raises(UnknownGpuError, match="unknown gpu_type 'V100'; known: H200, H100"):
        get_gpu("V100")


def test_duplicate_variant_names_rejected() -> None:
    v = get_variant("qwen3-8b")
    with pytest.raises(ValueError, match="duplicate variant names"):
        Catalog(variants=[v, v])


# ---------------------------------------------------------------- sizing (hand-checked)


def test_qwen25_7b_weights_and_kv() -> None:
    v = get_variant("qwen2.5-7b-instruct")
    # Hand count: embed 152064*3584 = 545.0M, untied lm_head the same; per layer q/o 2*3584^2, k/v 2*3584*512,
    # qkv bias 4608, MLP 3*3584*18944, 2 norms -> 233.06M x 28; final norm. Total 7,615,616,512 (7.62B).
    assert param_counts(v.architecture).total == 7_615_616_512
    assert weight_bytes(v) == pytest.approx(15.2e9, rel=0.02)
    # 2 (K,V) x 28 layers x 4 kv heads x 128 x 2 bytes = 57,344 B = 56 KiB.
    assert kv_bytes_per_token(v.architecture) == 56 * 1024
    assert kv_bytes_per_token(v.architecture, "fp8") == 28 * 1024


def test_qwen3_30b_a3b_total_and_active() -> None:
    counts = param_counts(get_variant("qwen3-30b-a3b").architecture)
    assert counts.total / 1e9 == pytest.approx(30.5, rel=0.01)
    assert counts.active / 1e9 == pytest.approx(3.3, rel=0.03)
    # 48 layers x 128 experts x 3 x 2048 x 768
    assert counts.experts == 48 * 128 * 3 * 2048 * 768


def test_qwen3_235b_a22b_total_and_active() -> None:
    counts = param_counts(get_variant("qwen3-235b-a22b").architecture)
    assert counts.total / 1e9 == pytest.approx(235, rel=0.01)
    assert counts.active / 1e9 == pytest.approx(22, rel=0.02)
    assert kv_bytes_per_token(get_variant("qwen3-235b-a22b").architecture) == 2 * 94 * 4 * 128 * 2


@pytest.mark.parametrize(("name", "billions"), [
    ("qwen2.5-0.5b-instruct", 0.49), ("qwen2.5-72b-instruct", 72.7), ("qwen3-0.6b", 0.60), ("qwen3-8b", 8.19),
    ("qwen3-32b", 32.8), ("qwen2.5-vl-7b-instruct", 8.29),
])
def test_published_parameter_counts(name: str, billions: float) -> None:
    assert param_counts(get_variant(name).architecture).total / 1e9 == pytest.approx(billions, rel=0.01)


def test_tied_embeddings_are_counted_once() -> None:
    counts = param_counts(get_variant("qwen3-0.6b").architecture)
    assert counts.lm_head == 0 and counts.embedding == 151936 * 1024


def test_quantized_weights_shrink_by_the_expected_ratio() -> None:
    v = get_variant("qwen2.5-7b-instruct")
    bf16, awq, int8 = weight_bytes(v), weight_bytes(v, "awq"), weight_bytes(v, "gptq-int8")
    counts = param_counts(v.architecture)
    # Linear layers at 4 bits + group-128 fp16 scale and packed zero; embeddings and lm_head stay bf16.
    expected_awq = counts.quantizable * (0.5 + 2.5 / 128) + (counts.total - counts.quantizable) * 2
    assert awq == pytest.approx(expected_awq, rel=1e-6)
    assert 0.3 < awq / bf16 < 0.4 and 0.55 < int8 / bf16 < 0.6
    fp8 = weight_bytes(get_variant("qwen3-30b-a3b"), "fp8")
    assert fp8 / weight_bytes(get_variant("qwen3-30b-a3b")) == pytest.approx(0.51, abs=0.01)


def test_gpus_needed_per_gpu_type() -> None:
    h200, a10g, h100 = get_gpu("H200"), get_gpu("A10G"), get_gpu("H100")
    assert gpus_needed(get_variant("qwen2.5-7b-instruct"), h200) == 1
    assert gpus_needed(get_variant("qwen2.5-72b-instruct"), h200) == 2  # 135 GiB of weights
    assert gpus_needed(get_variant("qwen2.5-72b-instruct"), h100) == 4
    assert gpus_needed(get_variant("qwen3-235b-a22b"), h200) == 4
    assert gpus_needed(get_variant("qwen3-8b"), a10g) == 2
    assert gpus_needed(get_variant("qwen3-8b"), a10g, quantization=get_variant("qwen3-8b").quantization("awq")) == 1


def test_max_kv_tokens_on_one_h200() -> None:
    v = get_variant("qwen2.5-7b-instruct")
    tokens = max_kv_tokens(v, get_gpu("H200"), Layout())
    expected = (140.4 * GIB * 0.9 - 2 * GIB - weight_bytes(v)) / (56 * 1024)
    assert tokens == pytest.approx(expected, rel=1e-3)
    assert 1.9e6 < tokens < 2.2e6  # vLLM reported 2.1 M KV tokens for this shape on an H200


def test_expert_parallel_shards_experts_over_all_ranks() -> None:
    v = get_variant("qwen3-30b-a3b")
    one = weight_bytes_per_gpu(v, Layout())
    dp4 = weight_bytes_per_gpu(v, Layout(dp=4))
    counts = param_counts(v.architecture)
    assert dp4 == pytest.approx(2 * (counts.expert_free + counts.experts / 4), rel=1e-6)
    assert dp4 < one / 3


@pytest.mark.parametrize(("name", "preset"), [
    (v, p) for v in ("qwen3-30b-a3b", "qwen3-235b-a22b") for p in ("h200x1", "h200x4", "h200x8")
])
def test_moe_presets_fit_their_gpus(name: str, preset: str) -> None:
    v = get_variant(name)
    p = v.preset(preset)
    kwargs = {**v.engine.to_engine_kwargs(), **p.engine}
    quant = v.quantization(p.quantization) if p.quantization else None
    assert check_fit(v, get_gpu(p.gpu_type), kwargs, p.gpu_count, quant) is None


def test_235b_bf16_does_not_fit_one_h200() -> None:
    v = get_variant("qwen3-235b-a22b")
    problem = check_fit(v, get_gpu("H200"), {"max_model_len": 32768}, 1, None)
    assert problem is not None and "does not fit" in problem and "needs about 4 H200 GPUs" in problem


# ---------------------------------------------------------------- report and HF configs


def test_models_table_text() -> None:
    table = models_table("H200")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["name", "family", "kind"] and "H200s needed" in lines[0]
    row = next(line for line in lines if line.startswith("qwen3-30b-a3b "))
    assert "30.5B" in row and "3.35B" in row and "moe" in row and "TR" in row
    row7 = next(line for line in lines if line.startswith("qwen2.5-7b-instruct "))
    assert " 15.2 " in row7 and " 56 " in row7


def test_models_table_json() -> None:
    rows = json.loads(models_table("A10G", json=True))
    by_name = {r["name"]: r for r in rows}
    assert len(rows) == len(REQUIRED)
    assert by_name["qwen3-8b"]["gpus_needed"] == 2 and by_name["qwen3-8b"]["gpu_type"] == "A10G"
    assert by_name["qwen3-8b"]["quantizations"]["fp8"]["gpus_needed"] is None  # A10G (8.6) cannot run FP8
    assert by_name["qwen2.5-7b-instruct"]["kv_bytes_per_token"] == 57344


def test_hf_config_fields() -> None:
    cfg = hf_config(get_variant("qwen3-30b-a3b"))
    assert cfg["architectures"] == ["Qwen3MoeForCausalLM"] and cfg["num_experts"] == 128 and cfg["head_dim"] == 128
    vl = hf_config(get_variant("qwen2.5-vl-7b-instruct"), quantization="awq")
    assert vl["vision_config"]["out_hidden_size"] == 3584 and vl["quantization_config"]["quant_method"] == "awq"
    fp8 = hf_config(get_variant("qwen3-8b"), quantization="fp8")
    assert fp8["quantization_config"]["weight_block_size"] == [128, 128]


def test_write_hf_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_hf_config(get_variant("qwen2.5-7b-instruct"), tmp_path / "m")
    assert json.loads(path.read_text())["intermediate_size"] == 18944


def test_sizing_matches_transformers_models() -> None:
    """Our parameter arithmetic equals the real model classes built from our config.json (meta device)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    for name in ("qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct", "qwen3-8b", "qwen3-30b-a3b",
                 "qwen2.5-vl-3b-instruct"):
        v = get_variant(name)
        cfg = hf_config(v)
        config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        auto = (transformers.AutoModelForImageTextToText if v.family == "qwen2.5-vl"
                else transformers.AutoModelForCausalLM)
        with torch.device("meta"):
            model = auto.from_config(config)
        assert sum(p.numel() for p in model.parameters()) == param_counts(v.architecture).total, name


def test_presets_use_real_vllm_names() -> None:
    """Every preset key is a vLLM engine/frontend arg, and the parsers named exist in vLLM."""
    from serve.config import allowed_engine_keys

    allowed = allowed_engine_keys()
    if allowed is None:
        pytest.skip("vLLM not importable")
    tool_parsers = pytest.importorskip("vllm.tool_parsers")
    reasoning = pytest.importorskip("vllm.reasoning")
    for v in load_catalog().variants:
        keys = set(v.engine.to_engine_kwargs())
        for preset in v.presets:
            keys |= set(preset.engine)
        assert keys <= allowed, (v.name, keys - allowed)
        if v.engine.tool_call_parser:
            assert v.engine.tool_call_parser in tool_parsers._TOOL_PARSERS_TO_REGISTER
        if v.engine.reasoning_parser:
            assert v.engine.reasoning_parser in reasoning._REASONING_PARSERS_TO_REGISTER
