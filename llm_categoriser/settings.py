"""Resolved run settings: config.yaml and --config, then environment defaults.

Precedence, highest first: ``--config KEY=VALUE``, ``config.yaml``, the environment
(``LLM_CATEGORISER_BATCH_SIZE``, ``LLM_PRIMARY``; only where config leaves the key null),
then built-in defaults. Secrets are never part of the settings: the Gemini key is read
from the environment inside the job that needs it.
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

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
PROMPTS_DIR = Path(__file__).with_name("prompts")
OFFLINE_MODEL = "offline-rules-v1"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    documents_dir: str = "Documents"
    report: str
    data_dir: str = "data"
    subjects: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    batch_size: int = 10
    max_retries: int = 2
    provider: Literal["offline", "gemini"] = "offline"
    mode: Literal["sync", "batch"] = "sync"
    model: str = "gemini-2.5-flash"
    temperature: float = 0.2
    thinking_budget: int | None = 0
    max_page_chars: int = 12000
    max_batch_chars: int = 40000
    anchor_pages: int = 4
    max_cell_chars: int = 600
    min_request_interval: float = 0.0
    request_timeout: float = 120.0
    max_request_attempts: int = 6
    batch_wait_minutes: float = 0.0
    max_batches_per_job: int = 60
    max_inline_bytes: int = 10_000_000
    max_job_attempts: int = 3
    sync_batches_per_job: int = 8
    reuse_answers: bool = True

    @property
    def effective_model(self) -> str:
        return OFFLINE_MODEL if self.provider == "offline" else self.model


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
            data["batch_size"] = 10
    if data.get("provider") is None:
        raw = env.get("LLM_PRIMARY", "").strip().lower()
        if raw and raw not in {"offline", "gemini"}:
            raise ConfigError(f"LLM_PRIMARY={raw!r} is not a provider. Allowed: offline, gemini.")
        data["provider"] = raw or "offline"
    if not data.get("report"):
        data["report"] = str(Path(data["documents_dir"]) / "language-check-report.csv")
    data["subjects"] = _as_list(data.get("subjects"))
    data["documents"] = _as_list(data.get("documents"))
    try:
        return Settings(**data)
    except ValidationError as exc:  # pragma: no cover - the schema catches these first
        raise ConfigError(str(exc)) from None


def template_paths() -> dict[str, Path]:
    return {
        "system": PROMPTS_DIR / "system.md",
        "user": PROMPTS_DIR / "user.md",
        "retry": PROMPTS_DIR / "retry.md",
    }
