"""qwen-loadtest: a load-test harness for OpenAI-compatible LLM endpoints.

Metric definitions follow ``vllm bench serve`` (TPOT excludes the first token, ITL is pooled over
streamed chunks, goodput counts requests that meet every SLO). The package also ships a fake OpenAI
server (:mod:`loadtest.fake_server`) for testing the harness and benchmarking the router alone.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
