"""Offline Kubernetes validation helpers: core kinds, the RayService CRD, embedded pod templates, Serve configs.

* Core kinds: kubernetes-validate's strict schemas (additionalProperties: false everywhere).
* RayService: the KubeRay CRD's openAPIV3Schema, made to behave like the API server (defaults fill required
  fields first, nulls are pruned) and strict (unknown fields rejected unless x-kubernetes-preserve-unknown-fields).
* Pod templates inside the RayService: the strict core PodTemplateSpec (the CRD copy of the pod spec is loose).
* serveConfigV2: ray.serve.schema.ServeDeploySchema.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

KUBE_VERSION = "1.30.0"
CRD_PATH = Path("/work/shared/k8s/crds/ray.io_rayservices.yaml")
REPO_CRD_PATH = Path(__file__).resolve().parent / "crds" / "ray.io_rayservices.v1.json"
CRD_KINDS = {"RayService", "PodMonitor", "ServiceMonitor"}


def validate_core(doc: dict[str, Any]) -> None:
    """Validate a core-kind object strictly; raises on errors or an unknown kind."""
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def crd_path() -> Path | None:
    """The RayService CRD copy: tests/helm/crds/ (committed) or the shared research copy."""
    for path in (REPO_CRD_PATH, CRD_PATH):
        if path.exists():
            return path
    return None


def _strictify(node: Any) -> Any:
    """Mimic the API server + kubeconform strictness on a structural schema."""
    if isinstance(node, dict):
        node = {k: _strictify(v) for k, v in node.items()}
        props = node.get("properties")
        if isinstance(props, dict):
            if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            if "required" in node:
                # The API server applies defaults before validating: a defaulted field is never missing.
                node["required"] = [r for r in node["required"] if "default" not in props.get(r, {})]
        return node
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    return node


def trim_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """Keep ray.io/v1 only and drop descriptions and the status schema (how crds/ was produced)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    out = copy.deepcopy(crd)
    out["spec"]["versions"] = [strip(v) for v in out["spec"]["versions"] if v["name"] == "v1"]
    for version in out["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"]["properties"].pop("status", None)
    return out


@functools.lru_cache(maxsize=1)
def _rayservice_validator() -> jsonschema.Draft7Validator:
    path = crd_path()
    if path is None:
        raise FileNotFoundError("RayService CRD not found")
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _strictify(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _prune_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _prune_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_prune_nulls(v) for v in node]
    return node


def rayservice_errors(doc: dict[str, Any]) -> list[str]:
    """All CRD-schema errors of a RayService (empty when valid)."""
    validator = _rayservice_validator()
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(_prune_nulls(doc))
    ]


@functools.lru_cache(maxsize=1)
def _pod_template_validator() -> jsonschema.Draft202012Validator:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    defs = json.loads((base / f"v{KUBE_VERSION}-local-strict" / "_definitions.json").read_text())
    resource = Resource.from_contents(defs)
    registry: Registry = Registry().with_resource(defs["$id"], resource)
    schema = {"$ref": f"{defs['$id']}#/$defs/io.k8s.api.core.v1.PodTemplateSpec"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def pod_templates(rayservice: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The head and worker pod templates of a RayService, keyed ``head`` / ``worker:<group>``."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    out = {"head": cluster["headGroupSpec"]["template"]}
    for group in cluster.get("workerGroupSpecs", []):
        out[f"worker:{group['groupName']}"] = group["template"]
    return out


def pod_template_errors(template: dict[str, Any]) -> list[str]:
    """Strict core PodTemplateSpec errors of one embedded template."""
    validator = _pod_template_validator()
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(template)]


def serve_config_errors(serve_config: dict[str, Any]) -> list[str]:
    """ServeDeploySchema errors of a Serve config dict (empty when valid)."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(copy.deepcopy(serve_config))
    except ValidationError as exc:
        return [str(exc)]
    return []


def validate_all(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Validate every document; returns ``{"Kind/name": [errors]}`` for the failing ones only."""
    failures: dict[str, list[str]] = {}
    for doc in docs:
        key = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        errors: list[str] = []
        kind = doc.get("kind")
        if kind == "RayService":
            errors += rayservice_errors(doc)
            for where, tpl in pod_templates(doc).items():
                errors += [f"{where}: {e}" for e in pod_template_errors(tpl)]
            errors += serve_config_errors(yaml.safe_load(doc["spec"]["serveConfigV2"]))
        elif kind in CRD_KINDS:
            errors += _monitor_errors(doc)
        else:
            try:
                validate_core(doc)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
                errors.append(str(exc))
        if errors:
            failures[key] = errors
    return failures


def _monitor_errors(doc: dict[str, Any]) -> list[str]:
    """Light checks of Prometheus Operator objects (no schema ships offline for them)."""
    errors: list[str] = []
    spec = doc.get("spec", {})
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append(f"apiVersion {doc.get('apiVersion')}")
    if not spec.get("selector", {}).get("matchLabels"):
        errors.append("spec.selector.matchLabels is empty")
    key = "podMetricsEndpoints" if doc["kind"] == "PodMonitor" else "endpoints"
    endpoints = spec.get(key) or []
    if not endpoints:
        errors.append(f"spec.{key} is empty")
    errors += [
        f"{key}[{i}].port must be a string name"
        for i, e in enumerate(endpoints)
        if not isinstance(e.get("port"), str)
    ]
    return errors
