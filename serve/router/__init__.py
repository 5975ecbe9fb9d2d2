"""The OpenAI-compatible, task-aware router (the Serve ingress)."""
