"""qwen-serve: a production serving stack for the Qwen model family on vLLM and Ray Serve."""

__version__ = "0.1.0"
