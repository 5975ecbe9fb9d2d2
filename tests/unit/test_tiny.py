"""Tiny random-weight Qwen2.5-VL: real architecture, tiny vision tower, real tokenizer, processor config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serve.tiny import VL_CHAT_TEMPLATE, build_tiny_model, is_built, tiny_config_dict


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("models") / "tiny-vl")


def test_vl_config_shape_fits_vllm_cpu() -> None:
    cfg = tiny_config_dict("qwen2_5_vl")
    text, vision = cfg["text_config"], cfg["vision_config"]
    assert text["hidden_size"] // text["num_attention_heads"] == 64  # vLLM CPU attention refuses head_dim 16
    assert sum(text["rope_parameters"]["mrope_section"]) == 64 // 2
    assert vision["out_hidden_size"] == text["hidden_size"]
    assert (vision["patch_size"], vision["spatial_merge_size"], vision["depth"]) == (14, 2, 2)
    assert cfg["image_token_id"] == 151655


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tiny architecture 'qwen9'"):
        tiny_config_dict("qwen9")  # type: ignore[arg-type]


def test_vl_model_files_and_config(vl_dir: Path) -> None:
    assert is_built(vl_dir)
    config = json.loads((vl_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert config["model_type"] == "qwen2_5_vl"
    pre = json.loads((vl_dir / "preprocessor_config.json").read_text())
    assert pre["image_processor_type"] == "Qwen2VLImageProcessor"
    assert pre["max_pixels"] <= 224 * 224
    assert json.loads((vl_dir / "chat_template.json").read_text())["chat_template"] == VL_CHAT_TEMPLATE


def test_vl_chat_template_places_image_tokens(vl_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(vl_dir))
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}},
                                         {"type": "text", "text": "What is this?"}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert "<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.convert_tokens_to_ids("<|image_pad|>") == 151655


def test_vl_model_generates_from_an_image_in_transformers(vl_dir: Path) -> None:
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(str(vl_dir))
    images = AutoImageProcessor.from_pretrained(str(vl_dir))(
        images=[Image.new("RGB", (100, 80), (200, 30, 30))], return_tensors="pt")
    grid = images["image_grid_thw"]
    assert grid.tolist() == [[1, 6, 8]]  # 84x112 after smart_resize: 6x8 patches of 14 px
    n_tokens = int(grid.prod()) // 4  # 2x2 spatial merge
    prompt = "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n_tokens + "<|vision_end|>Hi<|im_end|>\n"
    ids = tok(prompt, return_tensors="pt")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(vl_dir), dtype=torch.bfloat16)
    out = model.generate(**ids, pixel_values=images["pixel_values"], image_grid_thw=grid, max_new_tokens=3,
                         do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


def test_tiny_embedding_is_laid_out_like_qwen3_embedding(tmp_path: Path) -> None:
    """Decoder weights without lm_head, the causal-LM name in config.json, last-token pooling + normalisation."""
    from safetensors import safe_open

    out = build_tiny_model("qwen3_embedding", tmp_path / "emb")
    assert is_built(out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["head_dim"] == 64
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "embed_tokens.weight" in keys and not any(k.startswith("lm_head") for k in keys)
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] and pooling["word_embedding_dimension"] == config["hidden_size"]


def test_tiny_reranker_is_a_qwen3_causal_lm(tmp_path: Path) -> None:
    out = build_tiny_model("qwen3_reranker", tmp_path / "rr")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["model_type"] == "qwen3"
