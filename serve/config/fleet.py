"""The fleet config: every deployment, the router policy, security and Ray; YAML loading and profiles."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from serve.config.deployment import DeploymentSpec
from serve.config.specs import TASKS, RaySpec, RouterSpec, SecuritySpec, StrictModel, TaskPolicy

logger = logging.getLogger(__name__)

#: Where the named profiles live (``<repo>/deploy/profiles``); ``QWEN_SERVE_PROFILES_DIR`` overrides it.
PROFILES_DIR = Path(os.environ.get("QWEN_SERVE_PROFILES_DIR", Path(__file__).resolve().parents[2] / "deploy" / "profiles"))


class ConfigError(ValueError):
    """A fleet config that cannot be used; the message names the file, the field path and the problem."""


class FleetConfig(StrictModel):
    """The whole fleet: the single source of truth for the CLI, the Serve app, the RayService and the chart.

    Attributes:
        name: Fleet name (Serve application name, labels).
        port: HTTP port of the ingress.
        host: Bind address.
        deployments: The served models (at least one, unique names).
        router: Task routing policy.
        security: API keys, rate limits, input limits.
        ray: Local Ray settings or the cluster address.
        log_json: Log as JSON lines.

    Examples:
        >>> cfg = load_profile("demo")  # doctest: +SKIP
        >>> cfg.deployment("qwen3-general").engine_kwargs()["max_model_len"]  # doctest: +SKIP
        2048
    """

    name: str = Field(default="qwen-serve", pattern=r"^[a-z0-9][a-z0-9-]*$")
    port: int = Field(default=8000, ge=1, le=65535)
    host: str = "127.0.0.1"
    deployments: list[DeploymentSpec] = Field(min_length=1)
    router: RouterSpec = Field(default_factory=RouterSpec)
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    ray: RaySpec = Field(default_factory=RaySpec)
    log_json: bool = False

    @model_validator(mode="after")
    def _validate_fleet(self) -> FleetConfig:
        names = [d.name for d in self.deployments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate deployment names: {', '.join(dupes)}; each deployment needs its own name")
        self._fill_default_tasks()
        self._check_router(set(names))
        return self

    def _suited(self, task: str) -> list[str]:
        suited = [d for d in self.deployments if task in d.tasks]
        suited.sort(key=lambda d: d.tasks.index(task))
        return [d.name for d in suited]

    def _fill_default_tasks(self) -> None:
        """Tasks the config leaves out get every deployment that suits them, best-suited first.

        A text task no deployment specialises in falls back to the general-purpose ones; vision stays empty.
        """
        tasks = dict(self.router.tasks)
        generative = [d.name for d in self.deployments if d.resolved_runner == "generate"]
        for task in TASKS:
            if task in tasks:
                continue
            candidates = self._suited(task)
            if not candidates and task != "vision":
                candidates = self._suited("general") or generative
            tasks[task] = TaskPolicy(candidates=candidates)
        # Bypass validate_assignment's re-validation of the whole router: the values are already models.
        object.__setattr__(self.router, "tasks", tasks)

    def _check_router(self, names: set[str]) -> None:
        router = self.router
        runners = {d.name: d.resolved_runner for d in self.deployments}
        generative = any(r == "generate" for r in runners.values())
        for task, policy in router.tasks.items():
            missing = [c for c in policy.candidates if c not in names]
            if missing:
                raise ValueError(
                    f"router.tasks.{task}: candidate(s) {missing} are not deployments; known: {sorted(names)}"
                )
            pooling = [f"{c} ({runners[c]})" for c in policy.candidates if runners[c] != "generate"]
            if pooling:
                raise ValueError(f"router.tasks.{task}: {', '.join(pooling)} cannot serve chat or completions; "
                                 "embedding and score models are reached by endpoint (/v1/embeddings, /rerank)")
            if not policy.candidates and task != "vision" and generative:
                raise ValueError(f"router.tasks.{task}: no candidates (only `vision` may be empty)")
        if router.default_task not in router.tasks:
            raise ValueError(f"router.default_task {router.default_task!r} is not a task; tasks: {sorted(router.tasks)}")
        model_ids = names | {f"{d.name}:{a}" for d in self.deployments if d.lora is not None for a in d.lora.adapters}
        for alias, target in router.aliases.items():
            if alias in names:
                raise ValueError(f"router.aliases: alias {alias!r} collides with the deployment of that name")
            if target is not None and target not in router.tasks and target not in model_ids:
                raise ValueError(f"router.aliases.{alias}: unknown task {target!r}; tasks: {sorted(router.tasks)}; "
                                 f"or alias a deployment or `deployment:adapter`: {sorted(model_ids)}")

    def deployment(self, name: str) -> DeploymentSpec:
        """Return the deployment called ``name``.

        Raises:
            KeyError: No such deployment.
        """
        for spec in self.deployments:
            if spec.name == name:
                return spec
        raise KeyError(f"no deployment {name!r}; deployments: {[d.name for d in self.deployments]}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>", check_paths: bool = True,
                  check_engine_keys: bool = True) -> FleetConfig:
        """Validate a parsed config.

        Args:
            data: The config mapping.
            source: Where it came from, for messages.
            check_paths: Check that local model and adapter directories exist (False in Ray replicas that
                re-validate a config built elsewhere).
            check_engine_keys: Check engine key names against vLLM's own arguments (imports vLLM; False for
                dry runs that never start an engine).

        Raises:
            ConfigError: Invalid; one line per problem with its field path.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a fleet config must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data, context={"check_paths": check_paths,
                                                     "check_engine_keys": check_engine_keys})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, data)) from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], check_engine_keys: bool = True) -> FleetConfig:
        """Load and validate a YAML fleet config (``check_engine_keys``: see :meth:`from_dict`).

        Raises:
            ConfigError: Missing file, bad YAML or invalid config.
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path), check_engine_keys=check_engine_keys)


def _loc_path(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic location, naming deployments by name: ``deployments[qwen-coder].engine``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) else None
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name or item}]"]
        else:
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts) or "<root>"


def format_validation_error(exc: ValidationError, source: str, data: Any = None) -> str:
    """Turn a pydantic error into ``source: field.path: problem`` lines.

    Args:
        exc: The validation error.
        source: File name or label.
        data: The input, to name list items by their ``name``.
    """
    lines = [f"{source}: invalid fleet config ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {source}: {_loc_path(tuple(err['loc']), data)}: {msg}")
    return "\n".join(lines)


def load_fleet(path: str | os.PathLike[str], check_engine_keys: bool = True) -> FleetConfig:
    """Load a fleet config file (shortcut for :meth:`FleetConfig.from_yaml`)."""
    return FleetConfig.from_yaml(path, check_engine_keys=check_engine_keys)


def list_profiles() -> list[str]:
    """Names of the profiles in :data:`PROFILES_DIR`."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str, check_engine_keys: bool = True) -> FleetConfig:
    """Load a named profile (``demo``, ``cpu-small``, ``single-h200``, ``cluster``).

    Raises:
        ConfigError: Unknown profile (the message lists them) or invalid content.
    """
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown profile {name!r}; profiles: {', '.join(list_profiles())} (in {PROFILES_DIR})")
    return FleetConfig.from_yaml(path, check_engine_keys=check_engine_keys)


def fleet_json_schema() -> dict[str, Any]:
    """JSON schema of :class:`FleetConfig` (local ``$defs`` only), for the Helm chart's values schema."""
    return FleetConfig.model_json_schema(by_alias=True)
