"""Per-task request shaping: system prompt template, Qwen's recommended sampling, Qwen3 thinking.

Applied only where the client left a field unset, and only for requests the router routed by task (an
explicitly named deployment is left as sent). Thinking (``chat_template_kwargs.enable_thinking``) is set only
on deployments that support it (Qwen3); other knobs are dropped for deployments that cannot use them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

#: Sampling fields the router may fill in (vLLM accepts all of them on both endpoints).
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
                   "repetition_penalty")


def apply_task_defaults(body: MutableMapping[str, Any], policy: Any, capabilities: Any) -> list[str]:
    """Fill unset fields of ``body`` from a task policy, in place.

    Args:
        body: The request body (chat or completions) as a dict.
        policy: The task's :class:`serve.config.TaskPolicy` (system_prompt, sampling, enable_thinking).
        capabilities: The chosen deployment's capabilities (``thinking`` decides the thinking switch).

    Returns:
        Names of the fields that were set, for ``/v1/route`` and the logs.
    """
    applied: list[str] = []
    if policy is None:
        return applied
    messages = body.get("messages")
    if policy.system_prompt and isinstance(messages, list):
        has_system = any(isinstance(m, dict) and m.get("role") in ("system", "developer") for m in messages)
        if not has_system:
            body["messages"] = [{"role": "system", "content": policy.system_prompt}, *messages]
            applied.append("system_prompt")
    for key, value in (policy.sampling or {}).items():
        if key in SAMPLING_FIELDS and body.get(key) is None:
            body[key] = value
            applied.append(key)
    if policy.enable_thinking is not None and isinstance(messages, list) and getattr(capabilities, "thinking", False):
        ctk = body.get("chat_template_kwargs")
        if not isinstance(ctk, dict):
            ctk = {}
        if "enable_thinking" not in ctk:
            ctk["enable_thinking"] = bool(policy.enable_thinking)
            body["chat_template_kwargs"] = ctk
            applied.append("enable_thinking")
    return applied
