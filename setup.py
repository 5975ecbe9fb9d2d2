"""Build hook for the one optional C extension; everything else is in pyproject.toml.

``serve.router.classify._native`` computes the linear classifier's hashed text features in one pass. It is
optional: without a C compiler the install still succeeds and the classifier uses the numpy computation, which
gives the same features.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("serve.router.classify._native", ["serve/router/classify/_native.c"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
