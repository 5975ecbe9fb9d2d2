"""`qwen-serve render` (serve/render.py), its agreement with the chart, and the generated deploy/ files."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve.config import FleetConfig, list_profiles, load_profile
from serve.render import (
    IMPORT_PATH,
    dump_yaml,
    fleet_args,
    plan_worker_groups,
    render_main,
    render_rayservice,
    render_serve_config,
)
from tests.helm import k8s_validation as kv
from tests.helm.conftest import (
    CHART,
    PROFILES,
    REPO,
    Helm,
    default_values,
    helm_merge,
    load_module,
    one,
    profile_values,
)

FLEET_PROFILES = list_profiles()


@pytest.fixture(scope="module")
def fleets() -> dict[str, FleetConfig]:
    return {name: load_profile(name) for name in FLEET_PROFILES}


def test_profiles_exist() -> None:
    assert {"demo", "cpu-small", "single-h200", "cluster"} <= set(FLEET_PROFILES)


@pytest.mark.parametrize("profile", FLEET_PROFILES)
def test_serve_config_is_valid_and_round_trips(fleets: dict[str, FleetConfig], profile: str) -> None:
    fleet = fleets[profile]
    cfg = render_serve_config(fleet)
    assert kv.serve_config_errors(cfg) == []
    app = cfg["applications"][0]
    assert (app["name"], app["route_prefix"], app["import_path"]) == ("qwen-serve", "/", IMPORT_PATH)
    assert cfg["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert app["runtime_env"] == {"env_vars": dict(fleet.ray.env)}
    # The app builder re-validates args.fleet: it must give back the same fleet.
    again = FleetConfig.from_dict(yaml.safe_load(dump_yaml(app["args"]["fleet"])), check_paths=False)
    assert again.model_dump(mode="json") == fleet.model_dump(mode="json")
    assert app["args"]["fleet"] == fleet_args(again)


@pytest.mark.parametrize("profile", FLEET_PROFILES)
def test_rayservice_is_valid(fleets: dict[str, FleetConfig], profile: str) -> None:
    rs = render_rayservice(
        fleets[profile],
        name="qwen",
        namespace="ns",
        api_keys_secret="keys",
        hf_token_secret="hf",
        model_cache_claim="cache",
    )
    assert kv.validate_all([rs]) == {}
    assert yaml.safe_load(rs["spec"]["serveConfigV2"]) == render_serve_config(fleets[profile])
    for where, tpl in kv.pod_templates(rs).items():
        res = tpl["spec"]["containers"][0]["resources"]
        assert res["requests"].get("nvidia.com/gpu") == res["limits"].get("nvidia.com/gpu"), where
        vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
        assert vols["dshm"]["emptyDir"]["medium"] == "Memory"
        assert vols["model-cache"]["persistentVolumeClaim"]["claimName"] == "cache"


def test_worker_groups_follow_the_fleet(fleets: dict[str, FleetConfig]) -> None:
    groups = {g.name: g for g in plan_worker_groups(fleets["cluster"])}
    # qwen3-235b-a22b h200x8 (1-2 replicas x 8 GPUs) + qwen3-30b-a3b h200x4 (1-4 x 4) on 8-GPU pods.
    assert (groups["gpu-h200"].gpus, groups["gpu-h200"].min_pods, groups["gpu-h200"].max_pods) == (8, 2, 4)
    assert groups["gpu-l4"].min_pods == 0  # scale-to-zero deployment
    single = plan_worker_groups(fleets["single-h200"])  # five models sharing one GPU (gpu_fraction)
    assert [(g.name, g.gpus, g.min_pods, g.max_pods) for g in single] == [("gpu-h200", 1, 1, 1)]
    demo = plan_worker_groups(fleets["demo"])
    assert [(g.name, g.gpus) for g in demo] == [("cpu", 0)]
    assert render_rayservice(fleets["demo"])["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"][
        "spec"
    ]["containers"][0]["image"].endswith("-cpu")


def test_render_main_writes_yaml_and_reports_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert render_main("demo", "serve", out=out) == 0
    assert yaml.safe_load(out.getvalue())["applications"][0]["args"]["fleet"]["name"] == "demo"
    out = io.StringIO()
    profile = REPO / "deploy" / "profiles" / "cluster.yaml"
    assert render_main(str(profile), "rayservice", out=out, name="big", namespace=None) == 0
    doc = yaml.safe_load(out.getvalue())
    assert (doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]) == (
        "RayService",
        "big",
        "default",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndeployments: [{name: a, variant: qwen9-1b}]\n")
    assert render_main(str(bad), "serve", out=io.StringIO()) == 2
    assert "qwen9-1b" in capsys.readouterr().err
    assert render_main("demo", "helm", out=io.StringIO()) == 2


def test_values_schema_is_generated_and_current() -> None:
    gen = load_module(CHART / "generate_schema.py", "generate_schema")
    committed = (CHART / "values.schema.json").read_text()
    assert gen.render_schema() == committed, "run: python helm/qwen-serve/generate_schema.py"
    assert "https://" not in committed.replace(
        '"$schema": "https://json-schema.org/draft/2020-12/schema"', ""
    )
    schema = yaml.safe_load(committed)
    assert schema["additionalProperties"] is False
    fleet_props = set(schema["properties"]["fleet"]["properties"])
    assert fleet_props == set(FleetConfig.model_fields)


def test_deploy_files_are_current() -> None:
    gen = load_module(REPO / "deploy" / "generate.py", "deploy_generate")
    assert gen.stale_files() == [], "run: python deploy/generate.py"


@pytest.mark.parametrize("profile", PROFILES)
def test_chart_serve_config_equals_cli(helm: Helm, profile: str, tmp_path: Path) -> None:
    """Same values file -> the chart's serveConfigV2 == `qwen-serve render --format serve` of its fleet."""
    chart_cfg = yaml.safe_load(one(helm.docs(profile), "RayService")["spec"]["serveConfigV2"])
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(profile_values(profile)["fleet"]))
    out = io.StringIO()
    assert render_main(str(fleet_file), "serve", out=out) == 0
    cli_cfg = yaml.safe_load(out.getvalue())
    chart_fleet = chart_cfg["applications"][0]["args"].pop("fleet")
    cli_fleet = cli_cfg["applications"][0]["args"].pop("fleet")
    assert chart_cfg == cli_cfg
    assert chart_fleet == profile_values(profile)["fleet"]  # the chart passes the fleet through untouched
    assert fleet_args(FleetConfig.from_dict(chart_fleet, check_paths=False)) == cli_fleet


@pytest.mark.parametrize("profile", FLEET_PROFILES)
def test_chart_renders_profiles_identically(
    helm: Helm, fleets: dict[str, FleetConfig], profile: str, tmp_path: Path
) -> None:
    """A values file holding a fully rendered fleet gives byte-for-byte the CLI's serve config."""
    fleet = fleets[profile]
    gpus = max([d.accelerator.count for d in fleet.deployments if d.accelerator.type == "gpu"] or [0])
    group: dict[str, Any] = {
        "name": "w",
        "minReplicas": 1,
        "maxReplicas": 2,
        "gpus": gpus,
        "shmSize": "1Gi",
        "resources": {"requests": {"cpu": "1"}},
    }
    keys = {"existingSecret": "keys" if fleet.security.api_keys_env else ""}
    values = {"fleet": fleet_args(fleet), "rayCluster": {"workerGroups": [group]}, "apiKeys": keys}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    rendered = helm.template_files((path,), monitoring=False)
    ray = one([d for d in yaml.safe_load_all(rendered) if d], "RayService")
    chart_cfg = yaml.safe_load(ray["spec"]["serveConfigV2"])
    cli_cfg = render_serve_config(fleet)
    # Exactly the CLI's document, up to helm's coalescing with values.yaml (a null deletes a defaulted key).
    cli_fleet = cli_cfg["applications"][0]["args"]["fleet"]
    cli_cfg["applications"][0]["args"]["fleet"] = helm_merge(default_values()["fleet"], cli_fleet)
    assert chart_cfg == cli_cfg
    chart_fleet = FleetConfig.from_dict(chart_cfg["applications"][0]["args"]["fleet"], check_paths=False)
    assert fleet_args(chart_fleet) == cli_fleet


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) not installed")
@pytest.mark.parametrize("overlay", ["cpu-demo", "gpu"])
def test_kustomize_overlays_build_and_validate(overlay: str) -> None:
    path = REPO / "deploy" / "kustomize" / "overlays" / overlay
    proc = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert kv.validate_all(docs) == {}
    rs = one(docs, "RayService")
    assert rs["metadata"]["namespace"] == {"cpu-demo": "qwen-demo", "gpu": "qwen"}[overlay]
    fleet = yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"][0]["args"]["fleet"]
    assert fleet["name"] == {"cpu-demo": "demo", "gpu": "single-h200"}[overlay]
    images = {c["image"] for t in kv.pod_templates(rs).values() for c in t["spec"]["containers"]}
    assert images == {f"ghcr.io/qwen-serve/qwen-serve:0.1.0-{'cpu' if overlay == 'cpu-demo' else 'gpu'}"}
