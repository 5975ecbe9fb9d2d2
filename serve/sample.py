"""Send one sample streamed chat request through the stack and show the router's decision.

``python -m serve.sample --url http://127.0.0.1:8000`` (what ``make run`` does once the stack is ready).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Stream one answer from ``model="auto"`` with the official ``openai`` client."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--prompt", default="Write a Python function that checks whether a number is prime.")
    p.add_argument("--api-key", default="none")
    args = p.parse_args(argv)
    from openai import OpenAI

    client = OpenAI(base_url=args.url + "/v1", api_key=args.api_key)
    out = sys.stdout
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": args.prompt}], max_tokens=32, stream=True,
        stream_options={"include_usage": True},
    )
    h = raw.headers
    out.write(f"prompt: {args.prompt}\n")
    out.write(f"routed: task={h.get('x-qwen-task')} model={h.get('x-qwen-model')}\n")
    out.write(f"reason: {h.get('x-qwen-route-reason')}\n")
    out.write("answer (tiny random-weight model: random tokens): ")
    usage = None
    for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            out.write(chunk.choices[0].delta.content)
            out.flush()
        if chunk.usage:
            usage = chunk.usage
    out.write("\n")
    if usage:
        out.write(f"usage: prompt={usage.prompt_tokens} completion={usage.completion_tokens}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
