"""The workload configuration shared by every generator."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from loadtest.workloads.base import LengthDist

DatasetName = Literal["random", "sharegpt", "task-mix", "shared-prefix", "multi-turn"]


class WorkloadConfig(BaseModel):
    """What to send. One config drives every dataset; each uses the fields that apply to it."""

    dataset: DatasetName = Field(default="random", description="workload generator")
    num_prompts: int = Field(default=100, ge=1, description="number of conversations to generate")
    seed: int = Field(default=0, description="random seed; the same seed gives the same workload")
    input_len: LengthDist = Field(default_factory=lambda: LengthDist(value=256), description="prompt tokens")
    output_len: LengthDist = Field(default_factory=lambda: LengthDist(value=64), description="max_tokens")
    dataset_path: str | None = Field(
        default=None, description="ShareGPT-format JSON; the packaged one when None"
    )
    sharegpt_output_len: int | None = Field(default=None, description="override ShareGPT's reply lengths")
    task_weights: dict[str, float] = Field(
        default_factory=lambda: {"code": 1.0, "math": 1.0, "general": 1.0, "reasoning": 1.0, "vision": 0.0},
        description="task-mix weights (normalised)",
    )
    image_size: int = Field(
        default=32, ge=1, le=1024, description="side of the generated PNG for vision prompts"
    )
    num_prefixes: int = Field(default=4, ge=1, description="shared-prefix: distinct prefixes")
    prefix_len: int = Field(default=512, ge=0, description="shared-prefix: tokens per prefix")
    prefix_as_system: bool = Field(
        default=False, description="shared-prefix (chat): send the prefix as system prompt"
    )
    turns: LengthDist = Field(default_factory=lambda: LengthDist(value=3), description="multi-turn: turns")
    tokenizer: str | None = Field(
        default=None, description="tokenizer dir; the packaged Qwen tokenizer when None"
    )
