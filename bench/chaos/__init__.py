"""Chaos bench for qwen-serve: hostile input, overload, replica kill, cancellation (``run.py``)."""
