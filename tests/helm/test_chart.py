"""The Helm chart, validated offline: lint, strict schemas, the RayService CRD, behaviour, golden renders.

Regenerate the golden renders with ``QWEN_SERVE_UPDATE_GOLDEN=1 pytest tests/helm``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import k8s_validation as kv
from tests.helm.conftest import (
    CHART,
    GOLDEN_DIR,
    PROFILES,
    Helm,
    by_kind,
    one,
    profile_values,
    values_files,
)

GPU = "nvidia.com/gpu"
ROUTER_METRICS = (
    "qwen_router_requests_total",
    "qwen_router_decision_seconds",
    "qwen_router_spillovers_total",
    "qwen_router_ttft_seconds",
    "qwen_router_e2e_seconds",
)


def _containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    return template["spec"]["containers"]


def _rayservice(helm: Helm, profile: str) -> dict[str, Any]:
    return one(helm.docs(profile), "RayService")


@pytest.mark.parametrize("profile", PROFILES)
def test_lint_strict(helm: Helm, profile: str) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", "1.30.0"]
    for path in values_files(profile):
        args += ["-f", str(path)]
    proc = helm.run(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


@pytest.mark.parametrize("profile", PROFILES)
def test_every_document_validates(helm: Helm, profile: str) -> None:
    """Core kinds strictly, the RayService against its CRD, pod templates and serveConfigV2."""
    if kv.crd_path() is None:
        pytest.fail("RayService CRD missing: tests/helm/crds/ray.io_rayservices.v1.json")
    docs = helm.docs(profile)
    assert docs, "nothing rendered"
    assert kv.validate_all(docs) == {}


def test_validators_catch_mistakes(helm: Helm) -> None:
    """The validators are not vacuous: typos in each layer are reported."""
    ray = _rayservice(helm, "default")
    bad = json.loads(json.dumps(ray))
    bad["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["groupNmae"] = "x"
    assert any("groupNmae" in e for e in kv.rayservice_errors(bad))
    tpl = json.loads(json.dumps(kv.pod_templates(ray)["head"]))
    tpl["spec"]["containers"][0]["volumeMounts"][0]["mountPth"] = "/x"
    assert any("mountPth" in e for e in kv.pod_template_errors(tpl))
    assert kv.serve_config_errors({"applications": [{"name": "x", "route_prefix": "/"}]})
    pdb = one(helm.docs("default"), "PodDisruptionBudget")
    pdb["spec"]["maxUnavailabel"] = 1
    assert "PodDisruptionBudget" in str(kv.validate_all([pdb]))


@pytest.mark.parametrize("profile", PROFILES)
def test_golden_render(helm: Helm, profile: str) -> None:
    rendered = helm.template(profile)
    golden = GOLDEN_DIR / f"{profile}.yaml"
    if os.environ.get("QWEN_SERVE_UPDATE_GOLDEN"):
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} missing: run QWEN_SERVE_UPDATE_GOLDEN=1 pytest tests/helm"
    assert rendered == golden.read_text(), (
        f"render of {profile} changed: review, then QWEN_SERVE_UPDATE_GOLDEN=1"
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_gpu_requests_equal_limits(helm: Helm, profile: str) -> None:
    values = profile_values(profile)
    groups = {g["name"]: g for g in values["rayCluster"]["workerGroups"]}
    for where, tpl in kv.pod_templates(_rayservice(helm, profile)).items():
        res = _containers(tpl)[0]["resources"]
        assert res.get("limits", {}).get(GPU) == res.get("requests", {}).get(GPU), where
        want = groups[where.split(":", 1)[1]].get("gpus", 0) if where != "head" else 0
        assert int(res.get("limits", {}).get(GPU, 0)) == want, where
        if want:
            assert any(t.get("key") == GPU for t in tpl["spec"].get("tolerations", [])), where


@pytest.mark.parametrize("profile", PROFILES)
def test_shm_is_memory_backed(helm: Helm, profile: str) -> None:
    for where, tpl in kv.pod_templates(_rayservice(helm, profile)).items():
        vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
        assert vols["dshm"]["emptyDir"]["medium"] == "Memory", where
        assert vols["dshm"]["emptyDir"]["sizeLimit"], where
        mounts = {m["mountPath"]: m["name"] for m in _containers(tpl)[0]["volumeMounts"]}
        assert mounts["/dev/shm"] == "dshm", where


@pytest.mark.parametrize("profile", PROFILES)
def test_secrets_only_by_reference(helm: Helm, profile: str) -> None:
    docs = helm.docs(profile)
    assert not by_kind(docs, "Secret"), "the chart must never create secrets"
    values = profile_values(profile)
    for where, tpl in kv.pod_templates(_rayservice(helm, profile)).items():
        env = {e["name"]: e for e in _containers(tpl)[0]["env"]}
        for name, entry in env.items():
            if any(word in name for word in ("TOKEN", "KEY", "PASSWORD", "SECRET")):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], f"{where}: {name}"
        if values["hfToken"]["existingSecret"]:
            assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == values["hfToken"]["existingSecret"]
        if values["apiKeys"]["existingSecret"]:
            ref = env["QWEN_SERVE_API_KEYS"]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (
                values["apiKeys"]["existingSecret"],
                values["apiKeys"]["key"],
            )
        else:
            assert "QWEN_SERVE_API_KEYS" not in env


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("profile", PROFILES)
def test_selectors_match_pod_labels(helm: Helm, profile: str) -> None:
    docs = helm.docs(profile)
    ray = one(docs, "RayService")
    pods = {w: t["metadata"]["labels"] for w, t in kv.pod_templates(ray).items()}
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        hit = [w for w, labels in pods.items() if _matches(sel, labels)]
        assert len(hit) == 1 and hit[0].startswith("worker:"), (pdb["metadata"]["name"], hit)
    for mon in by_kind(docs, "PodMonitor"):
        sel = mon["spec"]["selector"]["matchLabels"]
        assert all(_matches(sel, labels) for labels in pods.values())
    serve_svc = ray["spec"]["serveService"]["metadata"]
    for mon in by_kind(docs, "ServiceMonitor"):
        assert _matches(mon["spec"]["selector"]["matchLabels"], serve_svc["labels"])
        assert [e["port"] for e in mon["spec"]["endpoints"]] == ["serve"]
    for ing in by_kind(docs, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == serve_svc["name"]
    hook = [d for d in by_kind(docs, "Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    assert len(hook) == 1
    assert f"http://{serve_svc['name']}:" in str(hook[0]["spec"]["containers"][0]["env"])


def test_monitors_only_with_the_api(helm: Helm) -> None:
    without = {d["kind"] for d in helm.docs("default", monitoring=False)}
    with_api = {d["kind"] for d in helm.docs("default", monitoring=True)}
    assert not {"PodMonitor", "ServiceMonitor"} & without
    assert {"PodMonitor", "ServiceMonitor"} <= with_api


def test_dashboard_has_router_and_engine_panels(helm: Helm) -> None:
    cms = [
        d for d in by_kind(helm.docs("default"), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert len(cms) == 1 and cms[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(next(iter(cms[0]["data"].values())))
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in ROUTER_METRICS:
        assert metric in exprs, metric
    for metric in (
        "ray_vllm_num_requests_running",
        "ray_vllm_kv_cache_usage_perc",
        "ray_vllm_generation_tokens",
    ):
        assert metric in exprs, metric
    assert not by_kind(helm.docs("cpu-demo"), "ConfigMap"), "dashboard disabled in cpu-demo"


def test_every_qwen_metric_on_the_dashboard_is_exported_by_the_router(helm: Helm) -> None:
    import re

    from serve.engine_stats import EngineStats
    from serve.router.metrics import RouterMetrics
    from serve.router.upstream import Endpoint

    metrics = RouterMetrics(["m"], ["general"])
    metrics.watch_replicas(lambda: {"m": [Endpoint("m", "r", "http://h", stats=EngineStats(prefix_queries=1))]})
    metrics.observe_request("general", "m", 200)
    metrics.spillovers.labels("saturated").inc()
    metrics.replica_choices.labels("m", "affinity").inc()
    metrics.ttft.labels("m").observe(0.1)
    metrics.e2e.labels("m").observe(0.1)
    metrics.decision.observe(0.001)
    _autoscaling_metrics(metrics)
    exported = {line.split("{")[0].split(" ")[0] for line in metrics.render().decode().splitlines()
                if line.startswith("qwen_")}
    cm = next(d for d in by_kind(helm.docs("default"), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard"))
    dashboard = json.loads(next(iter(cm["data"].values())))
    used = {m for p in dashboard["panels"] for t in p.get("targets", []) for m in re.findall(r"qwen_\w+", t["expr"])}
    assert {"qwen_engine_prefix_cache_hits_total", "qwen_router_replica_requests_total"} <= used
    assert used <= exported, sorted(used - exported)


def _autoscaling_metrics(metrics: Any) -> None:
    """Register and feed the autoscaling and scale-from-zero metrics (serve.router.autoscale_view, coldstart)."""
    import time

    from serve.config import FleetConfig
    from serve.router.autoscale_view import AutoscaleView
    from serve.router.coldstart import ColdStart
    from serve.router.upstream import StaticRegistry
    from tests.autoscale.fleet import NAME, autoscale_fleet

    fleet = FleetConfig.from_dict(autoscale_fleet(), check_paths=False)
    registry = StaticRegistry({})
    cold = ColdStart(fleet, registry, metrics)
    cold.m_seconds.labels("m").observe(30.0)
    cold.m_count.labels("m").inc()
    cold.m_held.labels("m").set(1)
    view = AutoscaleView(fleet, registry, metrics)
    view.records = {NAME: {"desired": 2, "target_replicas": 1, "value": 5.0, "updated": time.time()}}


@pytest.mark.parametrize("profile", PROFILES)
def test_ray_containers_have_no_probes_and_are_hardened(helm: Helm, profile: str) -> None:
    """KubeRay injects Ray probes itself; containers run non-root without privilege escalation."""
    for where, tpl in kv.pod_templates(_rayservice(helm, profile)).items():
        container = _containers(tpl)[0]
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container), where
        assert tpl["spec"]["securityContext"]["runAsNonRoot"] is True, where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
        image = container["image"]
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], image


def test_test_hook_pod(helm: Helm) -> None:
    docs = helm.docs("ingress-escape-hatches")
    pod = next(d for d in by_kind(docs, "Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test")
    container = pod["spec"]["containers"][0]
    script = container["args"][0]
    assert "/v1/models" in script and "/v1/chat/completions" in script
    env = {e["name"]: e for e in container["env"]}
    assert env["QWEN_MODEL"]["value"] == "qwen2.5-7b-instruct"
    assert "secretKeyRef" in env["QWEN_SERVE_API_KEYS"]["valueFrom"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not container["image"].endswith(":latest")


def test_model_cache_pvc_and_existing_claim(helm: Helm) -> None:
    pvc = one(helm.docs("default"), "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    claim = kv.pod_templates(_rayservice(helm, "default"))["head"]["spec"]["volumes"]
    assert {"claimName": pvc["metadata"]["name"]} in [v.get("persistentVolumeClaim") for v in claim]
    docs = helm.docs("ingress-escape-hatches")
    assert not by_kind(docs, "PersistentVolumeClaim")
    for tpl in kv.pod_templates(one(docs, "RayService")).values():
        vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
        assert vols["model-cache"]["persistentVolumeClaim"]["claimName"] == "shared-hf-cache"
        assert "certs" in vols  # extraVolumes
        assert {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"} in _containers(tpl)[0]["env"]  # extraEnv
    assert by_kind(docs, "NetworkPolicy")[0]["metadata"]["name"] == "r1-allow-ingress"  # extraObjects, tpl'd
    assert one(docs, "Ingress")["spec"]["tls"][0]["secretName"] == "qwen-tls"


def test_autoscaling_wired(helm: Helm) -> None:
    ray = _rayservice(helm, "multi-model")
    cluster = ray["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert (groups["h200x8"]["minReplicas"], groups["h200x8"]["maxReplicas"]) == (1, 2)
    fleet = yaml.safe_load(ray["spec"]["serveConfigV2"])["applications"][0]["args"]["fleet"]
    assert (
        fleet["deployments"][0]["autoscaling"]["max_replicas"] == 4
    )  # Ray Serve autoscaling, per deployment


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "bogus=1"), "Additional property bogus is not allowed"),
        (("--set", "fleet.bogus=1"), "Additional property bogus is not allowed"),
        (("--set", "rayCluster.head.shmSiz=1Gi"), "Additional property shmSiz is not allowed"),
        (("--set", "image.tag=latest"), "image.tag"),
        (("--set", "rayCluster.workerGroups[0].tolerations[0].efect=NoSchedule"), "efect"),
    ],
)
def test_schema_rejects_bad_values(helm: Helm, args: tuple[str, ...], message: str) -> None:
    proc = helm.run(*helm.template_args([], monitoring=False, extra=args))
    assert proc.returncode != 0
    assert message in proc.stderr


def test_schema_rejects_fleet_typos_in_a_deployment(helm: Helm, tmp_path: Path) -> None:
    values = profile_values("default")
    values["fleet"]["deployments"][0]["acclerator"] = {"type": "gpu"}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"fleet": values["fleet"]}))
    proc = helm.run(*helm.template_args([path], monitoring=False))
    assert proc.returncode != 0 and "acclerator" in proc.stderr


def _cpu_group(values: dict[str, Any]) -> None:
    values["rayCluster"]["workerGroups"][0]["gpus"] = 0


def _min_above_max(values: dict[str, Any]) -> None:
    values["rayCluster"]["workerGroups"][0]["minReplicas"] = 5


def _dup_group(values: dict[str, Any]) -> None:
    groups = values["rayCluster"]["workerGroups"]
    groups.append(dict(groups[0]))


def _keys_without_env(values: dict[str, Any]) -> None:
    values["fleet"]["security"] = {
        "require_api_key": False,
        "api_keys_env": None,
    }  # null deletes the key in helm


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_cpu_group, "needs GPUs but no rayCluster.workerGroups entry has gpus > 0"),
        (_min_above_max, "minReplicas (5) > maxReplicas (2)"),
        (_dup_group, "duplicate group name"),
        (_keys_without_env, "fleet.security.api_keys_env is empty"),
    ],
)
def test_fail_fast_checks(helm: Helm, tmp_path: Path, mutate: Any, message: str) -> None:
    values = profile_values("default")
    mutate(values)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = helm.run(*helm.template_args([path], monitoring=False))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "apiKeys.existingSecret="), "set apiKeys.existingSecret"),
        (("--kube-version", "1.25.0"), "kubeVersion"),
        (
            ("--set", "fleet.router.tasks.code.candidates[0]=nope"),
            'candidate "nope" is not a fleet deployment',
        ),
    ],
)
def test_fail_fast_flags(helm: Helm, args: tuple[str, ...], message: str) -> None:
    proc = helm.run(*helm.template_args([], monitoring=False, extra=args))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("profile", "api", "expected", "absent"),
    [
        ("default", "ray.io/v1", "port-forward svc/r1-qwen-serve-serve 8000:8000", "WARNING"),
        ("ingress-escape-hatches", None, "https://qwen.internal.example.com", "port-forward"),
        ("cpu-demo", "ray.io/v1", "curl -s $QWEN_URL/v1/models", "QWEN_KEY"),
    ],
)
def test_notes_render(
    helm: Helm, tmp_path: Path, profile: str, api: str | None, expected: str, absent: str
) -> None:
    """NOTES.txt (which `helm template` skips) renders, with the KubeRay warning only without ray.io/v1."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_check.tpl").write_text(
        '{{- define "notes-check" }}' + notes + "{{- end }}"
    )
    (chart / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "notes-check" . | toJson }}\n'
    )
    args = ["template", "r1", str(chart), "-n", "serve", "--show-only", "templates/notes-check.yaml"]
    for path in values_files(profile):
        args += ["-f", str(path)]
    if api:
        args += ["--api-versions", api]
    proc = helm.run(*args, check=True)
    text = yaml.safe_load(proc.stdout)["data"]["notes"]
    assert expected in text and absent not in text
    assert ("install the KubeRay operator" in text.replace("Install", "install")) is (api is None)


def test_gcs_fault_tolerance_from_the_fleet(helm: Helm, tmp_path: Path) -> None:
    """fleet.ray.gcs_fault_tolerance renders KubeRay's gcsFaultToleranceOptions (Redis address, namespace,
    password by secret reference), valid under the CRD, and matches `qwen-serve render`; absent without it."""
    from serve.config import FleetConfig
    from serve.render import gcs_fault_tolerance_options

    assert "gcsFaultToleranceOptions" not in _rayservice(helm, "default")["spec"]["rayClusterConfig"]
    values = profile_values("default")
    values["fleet"].setdefault("ray", {})["gcs_fault_tolerance"] = {
        "redis_address": "redis.ray.svc:6379", "redis_password_secret": "redis-auth/password",
        "external_storage_namespace": "qwen-prod"}
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump({"fleet": values["fleet"]}))
    proc = helm.run(*helm.template_args([path], monitoring=False), check=True)
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    ray = one(docs, "RayService")
    opts = ray["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert opts == {"redisAddress": "redis.ray.svc:6379", "externalStorageNamespace": "qwen-prod",
                    "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}}}}
    assert kv.validate_all(docs) == {}
    rendered = gcs_fault_tolerance_options(FleetConfig.from_dict(values["fleet"], check_paths=False))
    assert rendered == {"gcsFaultToleranceOptions": opts}
    bad = dict(values["fleet"], ray={"gcs_fault_tolerance": {"redis_address": "no-port"}})
    path.write_text(yaml.safe_dump({"fleet": bad}))
    assert helm.run(*helm.template_args([path], monitoring=False)).returncode != 0
