"""Workloads: input lengths exact by the real Qwen tokenizer, determinism, distributions."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest

from loadtest.tokens import count_tokens, exact_text, load_tokenizer
from loadtest.workloads import DatasetName, LengthDist, WorkloadConfig, build_workload, png_data_url
from loadtest.workloads.sharegpt import parse_json_array


def _all_turns_exact(convs: list) -> None:
    tok = load_tokenizer()
    for c in convs:
        for t in c.turns:
            assert count_tokens(t.prompt, tok) == t.prompt_len, (c.index, t.prompt_len)


@pytest.mark.parametrize("dataset", ["random", "task-mix", "shared-prefix", "multi-turn"])
def test_exact_input_lengths(dataset: DatasetName) -> None:
    cfg = WorkloadConfig(
        dataset=dataset,
        num_prompts=25,
        input_len=LengthDist.parse("1:300"),
        prefix_len=64,
        task_weights={"code": 1, "math": 1, "general": 1, "reasoning": 1, "vision": 1},
    )
    convs = build_workload(cfg)
    assert len(convs) == 25
    _all_turns_exact(convs)


def test_random_lengths_follow_distribution_and_seed() -> None:
    cfg = WorkloadConfig(
        dataset="random", num_prompts=40, input_len=LengthDist.parse(77), output_len=LengthDist.parse("10:20")
    )
    a, b = build_workload(cfg), build_workload(cfg)
    assert [c.turns[0].prompt for c in a] == [c.turns[0].prompt for c in b]
    assert {c.turns[0].prompt_len for c in a} == {77}
    outs = [c.turns[0].output_len for c in a]
    assert all(o is not None and 10 <= o <= 20 for o in outs) and len(set(outs)) > 3


def test_length_dist_parse_and_sample() -> None:
    rng = np.random.default_rng(0)
    assert LengthDist.parse("128").sample(3, rng) == [128, 128, 128]
    u = LengthDist.parse(100, range_ratio=0.5)
    assert (u.low, u.high) == (50, 150)
    n = LengthDist.parse("normal:200,20").sample(4000, rng)
    assert abs(np.mean(n) - 200) < 3 and abs(np.std(n) - 20) < 2 and min(n) >= 1
    with pytest.raises(ValueError):
        LengthDist(kind="uniform", low=5, high=1)


def test_task_mix_weights_and_vision_png() -> None:
    cfg = WorkloadConfig(
        dataset="task-mix",
        num_prompts=200,
        input_len=LengthDist.parse(40),
        task_weights={"code": 3, "vision": 1},
    )
    convs = build_workload(cfg)
    tasks = [c.task for c in convs]
    assert set(tasks) == {"code", "vision"}
    assert 0.65 < tasks.count("code") / 200 < 0.85
    img = next(c.turns[0].image_url for c in convs if c.task == "vision")
    assert img is not None and img.startswith("data:image/png;base64,")
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(img.split(",", 1)[1]))).size == (32, 32)
    assert png_data_url(8, np.random.default_rng(1)) == png_data_url(8, np.random.default_rng(1))
    with pytest.raises(ValueError):
        build_workload(WorkloadConfig(dataset="task-mix", task_weights={"poetry": 1}))


def test_shared_prefix_shares_prefixes() -> None:
    cfg = WorkloadConfig(
        dataset="shared-prefix", num_prompts=12, num_prefixes=3, prefix_len=50, input_len=LengthDist.parse(10)
    )
    convs = build_workload(cfg)
    heads = {c.turns[0].prompt.split()[:50].__str__() for c in convs}
    assert len(heads) == 3
    assert all(c.turns[0].prompt_len == 60 for c in convs)
    sys_cfg = cfg.model_copy(update={"prefix_as_system": True})
    convs = build_workload(sys_cfg)
    assert len({c.system for c in convs}) == 3 and all(c.turns[0].prompt_len == 10 for c in convs)


def test_pad_truncates_and_extends() -> None:
    gen, rng = exact_text(), np.random.default_rng(0)
    for n in (3, 30):
        assert count_tokens(gen.pad("Solve for x: 3x + 4 = 19. Show each step.", n, rng)) == n


def test_sharegpt_from_file_and_truncated_json(tmp_path: Path) -> None:
    entries = [
        {
            "conversations": [
                {"from": "human", "value": f"Question number {i} about the weather today?"},
                {"from": "gpt", "value": "It is sunny and warm with a light breeze. " * (i + 1)},
            ]
        }
        for i in range(10)
    ]
    entries.append({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "short"}]})
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(entries))
    convs = build_workload(WorkloadConfig(dataset="sharegpt", num_prompts=10, dataset_path=str(path)))
    _all_turns_exact(convs)
    tok = load_tokenizer()
    lens = {
        len(tok.encode(str(e["conversations"][1]["value"]), add_special_tokens=False)) for e in entries[:10]
    }
    assert {c.turns[0].output_len for c in convs} == lens
    with pytest.raises(ValueError):
        build_workload(WorkloadConfig(dataset="sharegpt", num_prompts=11, dataset_path=str(path)))
    text = json.dumps(entries)
    assert len(parse_json_array(text[: len(text) - 40])) == 10  # cut inside the last entry
