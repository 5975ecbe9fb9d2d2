"""Task classification for the router: a pipeline of small signal families, no model call.

Usage::

    from serve.router.classify import Classifier

    clf = Classifier(tasks=("code", "math", "vision", "reasoning", "general"), default_task="general")
    result = clf.classify(body, headers)   # -> Classification(task, signals, reason, language)

See :mod:`serve.router.classify.pipeline` for the decision rules and each family's module for its weights.
"""

from .pipeline import DEFAULT_TASKS, Classifier
from .types import Classification, Signal

__all__ = ["DEFAULT_TASKS", "Classification", "Classifier", "Signal"]
