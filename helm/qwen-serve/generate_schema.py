"""Generate helm/qwen-serve/values.schema.json (committed; tests/helm checks it is up to date).

Two sources, no hand-maintained copy of either:

* ``fleet``: ``serve.config.fleet_json_schema()`` (the pydantic FleetConfig, the same model the CLI loads);
* Kubernetes-typed values (resources, tolerations, affinity, env, volumes...): the strict Kubernetes 1.30
  definitions bundled with ``kubernetes-validate``, copied into ``$defs`` (no remote ``$ref``: helm would
  try to download it and fail offline).

Usage: ``python helm/qwen-serve/generate_schema.py [--check]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CHART_DIR = Path(__file__).resolve().parent
REPO_ROOT = CHART_DIR.parents[1]
SCHEMA_PATH = CHART_DIR / "values.schema.json"
KUBE_VERSION = "1.30.0"
K8S = "io.k8s.api.core.v1."

Schema = dict[str, Any]


def _k8s(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name if name.startswith('io.k8s') else K8S + name}"}


def _obj(props: Schema, *, required: list[str] | None = None, desc: str | None = None) -> Schema:
    out: Schema = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    if desc:
        out["description"] = desc
    return out


def _str(desc: str | None = None, **kw: Any) -> Schema:
    out: Schema = {"type": "string", **kw}
    if desc:
        out["description"] = desc
    return out


STR_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
INT0: Schema = {"type": "integer", "minimum": 0}
QUANTITY: Schema = _k8s("io.k8s.apimachinery.pkg.api.resource.Quantity")
DURATION: Schema = _str(pattern=r"^[0-9]+(ms|s|m|h)$")
LIST = "array"


def _list_of(item: Schema) -> Schema:
    return {"type": LIST, "items": item}


def _placement() -> Schema:
    return {
        "nodeSelector": STR_MAP,
        "tolerations": _list_of(_k8s("Toleration")),
        "affinity": _k8s("Affinity"),
    }


def _group_common() -> Schema:
    return {
        "rayStartParams": {"type": "object", "additionalProperties": {"type": "string"}},
        "resources": _k8s("ResourceRequirements"),
        "shmSize": QUANTITY,
        **_placement(),
        "topologySpreadConstraints": _list_of(_k8s("TopologySpreadConstraint")),
        "labels": STR_MAP,
        "annotations": STR_MAP,
        "extraEnv": _list_of(_k8s("EnvVar")),
        "serviceAccountName": _str(),
        "priorityClassName": _str(),
        "terminationGracePeriodSeconds": INT0,
        "lifecycle": _k8s("Lifecycle"),
    }


def _ray_cluster() -> Schema:
    worker = _obj(
        {
            "name": _str("Ray worker group name", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength=20),
            "replicas": INT0,
            "minReplicas": INT0,
            "maxReplicas": {"type": "integer", "minimum": 1},
            "gpus": {**INT0, "description": "GPUs per pod (requests == limits)"},
            "idleTimeoutSeconds": INT0,
            **_group_common(),
        },
        required=["name", "minReplicas", "maxReplicas", "resources", "shmSize"],
    )
    positive = {"type": "integer", "minimum": 1}
    health = _obj({"periodMs": positive, "timeoutMs": positive, "failureThreshold": positive},
                  desc="How fast the head's GCS declares a lost node dead (RAY_health_check_* env)")
    head = _obj({**_group_common(), "nodeHealthCheck": health}, required=["resources", "shmSize"])
    autoscaler = _obj(
        {
            "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
            "idleTimeoutSeconds": INT0,
            "resources": _k8s("ResourceRequirements"),
            "securityContext": _k8s("SecurityContext"),
            "env": _list_of(_k8s("EnvVar")),
            "image": _str(),
            "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        }
    )
    return _obj(
        {
            "rayVersion": _str(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$"),
            "enableInTreeAutoscaling": {"type": "boolean"},
            "autoscalerOptions": autoscaler,
            "head": head,
            "workerGroups": {**_list_of(worker), "minItems": 1},
        },
        required=["rayVersion", "head", "workerGroups"],
    )


def _monitoring() -> Schema:
    mon = {
        "enabled": {"type": "boolean"},
        "interval": DURATION,
        "scrapeTimeout": DURATION,
        "labels": STR_MAP,
        "metricRelabelings": _list_of({"type": "object"}),
    }
    return _obj(
        {
            "grafanaHost": _str(),
            "prometheusHost": _str(),
            "podMonitor": _obj(mon),
            "serviceMonitor": _obj({**mon, "path": _str(pattern="^/")}),
            "grafanaDashboard": _obj(
                {
                    "enabled": {"type": "boolean"},
                    "labels": STR_MAP,
                    "annotations": STR_MAP,
                    "namespace": _str(),
                }
            ),
        }
    )


def _ingress() -> Schema:
    path = _obj(
        {"path": _str(pattern="^/"), "pathType": {"enum": ["Prefix", "Exact", "ImplementationSpecific"]}},
        required=["path", "pathType"],
    )
    host = _obj({"host": _str(), "paths": {**_list_of(path), "minItems": 1}}, required=["paths"])
    return _obj(
        {
            "enabled": {"type": "boolean"},
            "className": _str(),
            "annotations": STR_MAP,
            "hosts": _list_of(host),
            "tls": _list_of(_k8s("io.k8s.api.networking.v1.IngressTLS")),
        }
    )


def _misc() -> Schema:
    secret_ref = {"existingSecret": _str(), "key": _str(minLength=1)}
    return {
        "nameOverride": _str(maxLength=40),
        "fullnameOverride": _str(maxLength=40),
        "commonLabels": STR_MAP,
        "image": _obj(
            {
                "repository": _str(minLength=1),
                "tag": {**_str("pinned tag; 'latest' is refused"), "not": {"const": "latest"}},
                "flavor": {"enum": ["gpu", "cpu"]},
                "digest": _str(pattern=r"^(sha256:[a-f0-9]{64})?$"),
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
            required=["repository"],
        ),
        "imagePullSecrets": _list_of(_k8s("LocalObjectReference")),
        "serve": _obj(
            {
                "applicationName": _str(minLength=1),
                "importPath": _str(pattern=r"^[\w.]+:[\w]+$"),
                "routePrefix": _str(pattern="^/"),
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            }
        ),
        "rayService": _obj(
            {
                "upgradeStrategy": {"enum": ["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]},
                "rayClusterDeletionDelaySeconds": {"type": ["integer", "null"], "minimum": 0},
                "excludeHeadPodFromServeSvc": {"type": "boolean"},
                "annotations": STR_MAP,
            }
        ),
        "serveService": _obj(
            {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "annotations": STR_MAP}
        ),
        "gpuResourceName": _str(pattern=r"^[a-z0-9.-]+/[a-zA-Z0-9.-]+$"),
        "runtimeClassName": _str(),
        **_placement(),
        "topologySpreadConstraints": _list_of(_k8s("TopologySpreadConstraint")),
        "priorityClassName": _str(),
        "serviceAccountName": _str(),
        "terminationGracePeriodSeconds": INT0,
        "podAnnotations": STR_MAP,
        "podSecurityContext": _k8s("PodSecurityContext"),
        "containerSecurityContext": _k8s("SecurityContext"),
        "extraEnv": _list_of(_k8s("EnvVar")),
        "extraEnvFrom": _list_of(_k8s("EnvFromSource")),
        "extraVolumes": _list_of(_k8s("Volume")),
        "extraVolumeMounts": _list_of(_k8s("VolumeMount")),
        "modelCache": _obj(
            {
                "enabled": {"type": "boolean"},
                "existingClaim": _str(),
                "mountPath": _str(pattern="^/"),
                "size": QUANTITY,
                "accessModes": {
                    **_list_of(
                        {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]}
                    ),
                    "minItems": 1,
                },
                "storageClassName": _str(),
                "keepOnUninstall": {"type": "boolean"},
                "annotations": STR_MAP,
            }
        ),
        "hfToken": _obj(secret_ref, desc="Hugging Face token from an existing Secret (never inlined)"),
        "apiKeys": _obj(secret_ref, desc="API keys from an existing Secret (never inlined)"),
        "engineSecret": _obj(secret_ref, desc="Engine secret from an existing Secret (never inlined); empty = "
                             "made per Ray cluster at deploy time"),
        "networkPolicy": _obj(
            {
                "enabled": {"type": "boolean"},
                "serveFrom": _list_of(_k8s("io.k8s.api.networking.v1.NetworkPolicyPeer")),
                "metricsFrom": _list_of(_k8s("io.k8s.api.networking.v1.NetworkPolicyPeer")),
                "controlFrom": _list_of(_k8s("io.k8s.api.networking.v1.NetworkPolicyPeer")),
            },
            desc="Ray pods accept every port only from this release's Ray pods (router -> engine included)",
        ),
        "ingress": _ingress(),
        "podDisruptionBudget": _obj(
            {
                "enabled": {"type": "boolean"},
                "maxUnavailable": {"type": ["integer", "string"]},
                "minAvailable": {"type": ["integer", "string", "null"]},
            }
        ),
        "monitoring": _monitoring(),
        "tests": _obj(
            {
                "image": _obj({"repository": _str(minLength=1), "tag": _str(minLength=1)}),
                "model": _str(),
                "timeoutSeconds": {"type": "integer", "minimum": 1},
            }
        ),
        "extraObjects": _list_of({"type": "object"}),
    }


def _collect_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out.add(ref[len("#/$defs/") :])
        for value in node.values():
            _collect_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, out)


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip_descriptions(v) for k, v in node.items() if k != "description" or not isinstance(v, str)
        }
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def _k8s_definitions() -> dict[str, Schema]:
    import kubernetes_validate  # dev dependency

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = base / f"v{KUBE_VERSION}-local-strict" / "_definitions.json"
    defs: dict[str, Schema] = json.loads(path.read_text())["$defs"]
    return defs


def _close_k8s_defs(schema: Schema, k8s_defs: dict[str, Schema]) -> dict[str, Schema]:
    """Copy every Kubernetes definition reachable from ``schema`` (descriptions stripped)."""
    wanted: set[str] = set()
    _collect_refs(schema, wanted)
    out: dict[str, Schema] = {}
    todo = [n for n in wanted if n.startswith("io.k8s.")]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = _strip_descriptions(k8s_defs[name])
        refs: set[str] = set()
        _collect_refs(out[name], refs)
        todo.extend(r for r in refs if r not in out)
    return dict(sorted(out.items()))


def build_schema() -> Schema:
    """Build the chart's values schema (fleet part from the pydantic FleetConfig)."""
    sys.path.insert(0, str(REPO_ROOT))
    from serve.config import fleet_json_schema

    fleet = json.loads(json.dumps(fleet_json_schema()))
    fleet_defs: dict[str, Schema] = fleet.pop("$defs", {})
    props: Schema = {**_misc(), "fleet": fleet, "rayCluster": _ray_cluster()}
    schema: Schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "qwen-serve Helm chart values",
        "description": "GENERATED by helm/qwen-serve/generate_schema.py: do not edit by hand.",
        "type": "object",
        "additionalProperties": False,
        "required": ["fleet", "image", "rayCluster", "serve"],
        "properties": dict(sorted(props.items())),
    }
    k8s = _close_k8s_defs(schema, _k8s_definitions())
    clash = set(k8s) & set(fleet_defs)
    if clash:
        raise RuntimeError(f"$defs name clash between fleet and Kubernetes definitions: {sorted(clash)}")
    schema["$defs"] = {**dict(sorted(fleet_defs.items())), **k8s}
    return schema


def render_schema() -> str:
    """Return the schema as the exact text committed in values.schema.json."""
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write values.schema.json, or with --check fail when the committed file is stale."""
    parser = argparse.ArgumentParser(description="generate values.schema.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    args = parser.parse_args(argv)
    text = render_schema()
    if args.check:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            sys.stderr.write(
                f"{SCHEMA_PATH} is out of date: run python {Path(__file__).relative_to(REPO_ROOT)}\n"
            )
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    sys.stdout.write(f"wrote {SCHEMA_PATH} ({len(text)} bytes)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
