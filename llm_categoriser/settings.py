"""Resolved run settings: config.yaml and --config, then environment defaults.

Precedence, highest first: ``--config KEY=VALUE``, ``config.yaml``, the environment
(``LLM_CATEGORISER_BATCH_SIZE``, ``LLM_PRIMARY``, ``LLM_FALLBACK``; only where config leaves the key null),
then the defaults. The JSON schema (``config.schema.yaml``) is the one place of every key, its
default and its allowed values: ``resolve`` validates against it once and fills its defaults;
``Settings`` only types the result. Secrets are never part of the settings: a provider's key
is read from the environment inside the job that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError
from .layout import REPORT_NAME, SCHEMA_PATH, Layout


class Settings(BaseModel):
    """The resolved settings; every default comes from the schema (see ``resolve``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    documents_dir: str
    report: str
    data_dir: str
    subjects: tuple[str, ...]
    documents: tuple[str, ...]
    batch_size: int
    max_retries: int
    provider: str
    fallback: tuple[str, ...]
    mode: Literal["sync", "batch"]
    model: str
    openai_model: str
    openai_base_url: str | None
    mistral_model: str
    mistral_base_url: str | None
    temperature: float
    thinking_budget: int | None
    max_page_chars: int
    max_batch_chars: int
    max_cell_chars: int
    min_request_interval: float
    request_timeout: float
    max_request_attempts: int
    batch_wait_minutes: float
    max_batches_per_job: int
    max_inline_bytes: int
    max_job_attempts: int
    max_concurrent_requests: int
    requests_per_minute: float
    tokens_per_minute: float
    api_processes: int
    reuse_answers: bool
    progress: Literal["compact", "verbose"]
    csv_bom: bool
    cascade: bool
    cascade_min_agreement: float
    cascade_seed: int
    cascade_audit: int
    max_cost_usd: float | None

    @property
    def layout(self) -> Layout:
        return Layout.of(self)

    @property
    def effective_model(self) -> str:
        """The model name the provider writes in the outputs."""
        from .providers import get_provider

        return get_provider(self.provider).model(self)


@cache
def schema() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


_BOOLEANS = {word: True for word in ("true", "yes", "on", "1")} | {
    word: False for word in ("false", "no", "off", "0")
}


def coerce_booleans(config: MutableMapping[str, Any]) -> None:
    """Turn 'false', 'yes', ... of boolean keys into booleans, in place.

    ``--config KEY=false`` reaches the workflow as the string 'false'; Snakemake's own schema
    validation of ``config`` would refuse it, so the Snakefile calls this first.
    """
    for name, spec in schema()["properties"].items():
        value = config.get(name)
        if spec.get("type") == "boolean" and isinstance(value, str):
            config[name] = _BOOLEANS.get(value.strip().lower(), value)


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in (value,) if v.strip())
    return tuple(str(v) for v in value)


def _fallback(value: Any, env: Mapping[str, str]) -> tuple[str, ...]:
    """The fallback providers, in order: config (a list or 'a,b'), else $LLM_FALLBACK."""
    from .providers import PROVIDERS

    where = "config key fallback"
    if value is None:
        value, where = env.get("LLM_FALLBACK", ""), "LLM_FALLBACK"
    names = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    chosen = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in chosen if n not in PROVIDERS]
    if unknown:
        raise ConfigError(
            f"{where}: {', '.join(map(repr, unknown))} is not a provider. Allowed: {', '.join(PROVIDERS)}."
        )
    return chosen


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``config`` against the JSON schema and fill in defaults; ConfigError if invalid."""
    import jsonschema

    data = dict(config)
    coerce_booleans(data)
    for name, spec in schema()["properties"].items():
        data.setdefault(name, spec.get("default"))
    validator = jsonschema.Draft202012Validator(schema())
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if problems:
        lines = []
        for problem in problems:
            key = ".".join(str(p) for p in problem.path) or "(top level)"
            allowed = ""
            if problem.validator == "enum":
                allowed = f" Allowed: {', '.join(str(v) for v in problem.validator_value if v)}."
            if problem.validator == "additionalProperties":
                known = ", ".join(sorted(schema()["properties"]))
                allowed = f" Known keys: {known}."
            lines.append(f"config key {key}: {problem.message}.{allowed}")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(lines))
    return data


def resolve(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data = validate_config(config)
    if data.get("batch_size") is None:
        raw = env.get("LLM_CATEGORISER_BATCH_SIZE", "").strip()
        if raw:
            if not raw.isdigit() or not 1 <= int(raw) <= 100:
                raise ConfigError(
                    f"LLM_CATEGORISER_BATCH_SIZE={raw!r} is not a whole number from 1 to 100; "
                    f"unset it or set batch_size in config.yaml."
                )
            data["batch_size"] = int(raw)
        else:
            data["batch_size"] = schema()["properties"]["batch_size"]["x-fallback"]
    if data.get("provider") is None:
        from .providers import PROVIDERS

        raw = env.get("LLM_PRIMARY", "").strip().lower()
        if raw and raw not in PROVIDERS:
            raise ConfigError(f"LLM_PRIMARY={raw!r} is not a provider. Allowed: {', '.join(PROVIDERS)}.")
        data["provider"] = raw or schema()["properties"]["provider"]["x-fallback"]
    data["fallback"] = _fallback(data.get("fallback"), env)
    if not data.get("report"):
        data["report"] = str(Path(data["documents_dir"]) / REPORT_NAME)
    data["subjects"] = _as_list(data.get("subjects"))
    data["documents"] = _as_list(data.get("documents"))
    try:
        return Settings(**data)
    except ValidationError as exc:  # pragma: no cover - the schema catches these first
        raise ConfigError(str(exc)) from None
