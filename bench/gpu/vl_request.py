"""Send one image (a 64x64 PNG data URL) and one text prompt to each URL/model pair; print the outcomes as JSON.

Usage: ``python3 vl_request.py URL MODEL [URL MODEL ...]`` (stdlib only: runs on the bare GPU image).
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import urllib.error
import urllib.request
import zlib


def png(w: int, h: int) -> bytes:
    """A small RGB gradient PNG."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 4 % 256, 128)) for x in range(w)) for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def ask(url: str, model: str, content: object) -> dict[str, object]:
    """POST one chat request; the status, routing headers, usage and finish reason (or the error body)."""
    body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": content}]}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            data = json.load(r)
            return {"status": r.status, "task": r.headers.get("x-qwen-task"), "model": r.headers.get("x-qwen-model"),
                    "usage": data.get("usage"), "finish_reason": data["choices"][0]["finish_reason"]}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()[:1500]}
    except Exception as e:  # noqa: BLE001 - report whatever happened
        return {"status": None, "error": repr(e)[:1500]}


def main(argv: list[str]) -> int:
    """Image and text to every URL/model pair."""
    image = [{"type": "text", "text": "What is in this picture?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png(64, 64)).decode()}}]
    out = {}
    for url, model in zip(argv[::2], argv[1::2], strict=True):
        out[f"{url} {model}"] = {"image": ask(url, model, image), "text": ask(url, model, "Say hello.")}
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
