"""What the router knows about one request, read once from its body: :class:`RequestFacts`.

Every concern that looks inside a request (capability checks, prompt-token counting, replica affinity, task
classification, the logs' fingerprint) reads these facts instead of walking the body itself. They are built
once per request, after validation, by :func:`facts_of`, whatever the request's shape:

- chat completions (``messages``), completions (``prompt``), ``/tokenize`` (either);
- the Responses API (``input``: a string or items, plus ``instructions``);
- Anthropic Messages (``messages`` with content blocks, plus a top-level ``system``).

One vocabulary of content-part types (:data:`TEXT_PARTS`, :data:`IMAGE_PARTS`, ...) covers the OpenAI chat,
Responses and Anthropic shapes (the ones vLLM's chat parser accepts); the validator, the classifier and the
capability check all use it. Adding a request shape means teaching :func:`facts_of` to read it: nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- the content-part vocabulary ------------------------------------------------------------------------
#: Parts that carry text (chat ``text``, Responses ``input_text``/``output_text``, reasoning and refusals).
TEXT_PARTS = frozenset({"text", "input_text", "output_text", "thinking", "refusal"})
#: Image parts: chat ``image_url``, Responses ``input_image``, Anthropic ``image``, precomputed embeddings.
IMAGE_PARTS = frozenset({"image_url", "input_image", "image", "image_embeds"})
#: Video parts.
VIDEO_PARTS = frozenset({"video_url", "video", "video_embeds"})
#: Audio parts.
AUDIO_PARTS = frozenset({"input_audio", "audio_url", "audio", "audio_embeds"})
#: File parts (chat ``file``, Responses ``input_file``, Anthropic ``document``).
FILE_PARTS = frozenset({"file", "input_file", "document"})
#: Tool traffic inside messages (Anthropic ``tool_use``/``tool_result``; their text is read when present).
TOOL_PARTS = frozenset({"tool_use", "tool_result", "tool_reference"})
#: Every content-part ``type`` the router accepts.
KNOWN_PARTS = TEXT_PARTS | IMAGE_PARTS | VIDEO_PARTS | AUDIO_PARTS | FILE_PARTS | TOOL_PARTS
#: The parts an OpenAI chat message may carry (what vLLM's chat parser accepts, plus the legacy ``image`` and
#: ``video``); Anthropic-only blocks (``tool_use``, ``tool_result``, ``document``) belong to ``/v1/messages``.
CHAT_PARTS = KNOWN_PARTS - {"tool_use", "tool_result", "document"}
#: Parts a model must be able to see.
VISION_PARTS = IMAGE_PARTS | VIDEO_PARTS

SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class Turn:
    """One message's role and its text (text parts joined by newlines; media are counted, not kept)."""

    role: str
    text: str


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything the router's steps need to know about one request's content.

    Attributes:
        kind: The request shape (``chat``, ``completions``, ``responses``, ``messages``, ``tokenize``, ...).
        turns: Every message in order (the completions prompt is one ``user`` turn).
        images: Image parts anywhere in the request.
        videos: Video parts anywhere in the request.
        audio: Audio parts anywhere in the request.
        tool_names: Names of the tool definitions (lower-cased, at most 64).
        tools_text: The tool definitions as JSON (their prompt cost), empty without tools.
        thinking: ``enable_thinking`` is explicitly true (needs a thinking-capable model).
        thinking_hint: The client asks for thinking: ``enable_thinking`` or a medium/high reasoning effort.
        max_tokens: The output budget asked for (0 when unset).
        n: Choices asked for.
        prompt_token_ids: Length of a token-id prompt (its exact prompt size), else None.
        session: An explicit session id (``x-session-id`` header or ``user`` field), else None.
        prefix: The conversation's start: leading system turns and the first user turn (the text that every
            turn of the conversation shares; replica affinity keys on it).
        last_user: Index into ``turns`` of the last user turn (-1 when there is none).
        templated: The turns are messages rendered by a chat template (not a raw completions prompt).
    """

    kind: str
    turns: tuple[Turn, ...] = ()
    images: int = 0
    videos: int = 0
    audio: int = 0
    tool_names: tuple[str, ...] = ()
    tools_text: str = ""
    thinking: bool = False
    thinking_hint: bool = False
    max_tokens: int = 0
    n: int = 1
    prompt_token_ids: int | None = None
    session: str | None = None
    prefix: str = ""
    last_user: int = -1
    templated: bool = False

    @property
    def vision(self) -> bool:
        """Whether the request carries images or videos."""
        return bool(self.images or self.videos)

    @property
    def tools(self) -> bool:
        """Whether the request defines tools."""
        return bool(self.tools_text)

    @property
    def media_parts(self) -> int:
        """Image and video parts (each costs a budget of prompt tokens)."""
        return self.images + self.videos

    def texts(self) -> list[str]:
        """The text of every turn, plus the tool definitions: what the prompt is made of."""
        out = [t.text for t in self.turns if t.text]
        if self.tools_text:
            out.append(self.tools_text)
        return out


class _Counter:
    __slots__ = ("images", "videos", "audio")

    def __init__(self) -> None:
        self.images = self.videos = self.audio = 0

    def text_of(self, content: Any) -> str:
        """Text of a content value (string, list of parts, or one part), counting media parts on the way."""
        if isinstance(content, str):
            return content
        if isinstance(content, Mapping):
            content = (content,)
        if not isinstance(content, Sequence):
            return ""
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind in TEXT_PARTS:
                t = part.get("text", part.get(kind) if isinstance(kind, str) else None)
                if isinstance(t, str):
                    texts.append(t)
            elif kind in IMAGE_PARTS:
                self.images += 1
            elif kind in VIDEO_PARTS:
                self.videos += 1
            elif kind in AUDIO_PARTS:
                self.audio += 1
            elif kind == "tool_result":
                texts.append(self.text_of(part.get("content")))
        return "\n".join(t for t in texts if t)


def _tool_info(body: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    names: list[str] = []
    found: list[Any] = []
    for key in ("tools", "functions"):
        tools = body.get(key)
        if not isinstance(tools, Sequence) or isinstance(tools, str) or not tools:
            continue
        found.append(tools)
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            fn = tool.get("function", tool)
            name = fn.get("name") if isinstance(fn, Mapping) else None
            if isinstance(name, str):
                names.append(name.lower()[:64])
    if not found:
        return (), ""
    import orjson

    try:
        text = orjson.dumps(found[0] if len(found) == 1 else found).decode()
    except TypeError:
        text = str(found)
    return tuple(names[:64]), text


def _max_tokens(body: Mapping[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        v = body.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def _responses_turns(body: Mapping[str, Any], counter: _Counter) -> list[Turn]:
    turns: list[Turn] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        turns.append(Turn("system", instructions))
    items = body.get("input")
    if isinstance(items, str):
        turns.append(Turn("user", items))
        return turns
    if not isinstance(items, Sequence):
        return turns
    for item in items:
        if not isinstance(item, Mapping):
            continue
        itype = item.get("type", "message")
        if itype == "message" or "role" in item:
            turns.append(Turn(str(item.get("role") or "user"), counter.text_of(item.get("content"))))
        elif itype == "function_call_output":
            out = item.get("output")
            turns.append(Turn("tool", out if isinstance(out, str) else counter.text_of(out)))
        elif itype == "function_call":
            args = item.get("arguments")
            turns.append(Turn("assistant", args if isinstance(args, str) else ""))
    return turns


def _message_turns(body: Mapping[str, Any], counter: _Counter) -> list[Turn]:
    turns: list[Turn] = []
    system = body.get("system")  # Anthropic Messages: a top-level system prompt (string or text blocks)
    if system is not None:
        text = counter.text_of(system)
        if text:
            turns.append(Turn("system", text))
    for msg in body.get("messages") or ():
        if isinstance(msg, Mapping):
            role = msg.get("role")
            turns.append(Turn(role if isinstance(role, str) else "", counter.text_of(msg.get("content"))))
    return turns


def facts_of(body: Mapping[str, Any], kind: str = "chat",
             headers: Mapping[str, str] | None = None) -> RequestFacts:
    """Read a request body once into :class:`RequestFacts`.

    Args:
        body: The parsed (and validated) JSON body.
        kind: The request shape: ``chat``, ``completions``, ``responses``, ``messages``, ``tokenize``, ...
            A body with ``messages`` is read as messages whatever the kind (``/tokenize`` takes both).
        headers: Request headers (for ``x-session-id``).

    Returns:
        The facts.
    """
    counter = _Counter()
    prompt_ids: int | None = None
    templated = True
    if kind == "responses":
        turns = _responses_turns(body, counter)
    elif isinstance(body.get("messages"), list):
        turns = _message_turns(body, counter)
    else:
        templated = False
        prompt = body.get("prompt", body.get("input"))
        turns = []
        if isinstance(prompt, str):
            turns.append(Turn("user", prompt))
        elif isinstance(prompt, list) and prompt:
            if all(isinstance(p, str) for p in prompt):
                turns.append(Turn("user", "\n".join(prompt)))
            elif all(isinstance(p, int) for p in prompt):
                prompt_ids = len(prompt)
    last_user = max((i for i, t in enumerate(turns) if t.role == "user"), default=-1)
    prefix_parts: list[str] = []
    for t in turns:  # leading system turns and the first other turn
        prefix_parts.append(t.text)
        if t.role not in SYSTEM_ROLES:
            break
    names, tools_text = _tool_info(body)
    ctk = body.get("chat_template_kwargs")
    thinking = isinstance(ctk, Mapping) and ctk.get("enable_thinking") is True
    effort = body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    if effort is None and isinstance(reasoning, Mapping):
        effort = reasoning.get("effort")
    hint = thinking or (isinstance(effort, str) and effort.lower() in ("medium", "high"))
    if isinstance(body.get("thinking"), Mapping) and body["thinking"].get("type") == "enabled":
        hint = True  # Anthropic's extended thinking
    n = body.get("n")
    session = (headers or {}).get("x-session-id") or body.get("user")
    return RequestFacts(
        kind=kind, turns=tuple(turns), images=counter.images, videos=counter.videos, audio=counter.audio,
        tool_names=names, tools_text=tools_text, thinking=thinking, thinking_hint=hint,
        max_tokens=_max_tokens(body), n=n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1,
        prompt_token_ids=prompt_ids, session=session if isinstance(session, str) and session else None,
        prefix="\x00".join(p for p in prefix_parts if p), last_user=last_user,
        templated=templated,
    )
