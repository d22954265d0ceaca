"""Settings from config.yaml and --config: validation, coercion and errors that name the key."""

from __future__ import annotations

import pytest

from llm_categoriser.errors import ConfigError
from llm_categoriser.providers import PROVIDERS
from llm_categoriser.settings import resolve, schema


@pytest.mark.parametrize(
    ("raw", "value"), [("false", False), ("False", False), ("no", False), ("true", True)]
)
def test_boolean_keys_accept_the_strings_snakemake_passes_from_the_command_line(raw, value):
    assert resolve({"reuse_answers": raw}, env={}).reuse_answers is value


def test_a_boolean_key_with_another_word_names_the_key():
    with pytest.raises(ConfigError, match="config key reuse_answers: 'perhaps' is not of type 'boolean'"):
        resolve({"reuse_answers": "perhaps"}, env={})


def test_request_limits_are_validated_and_default_to_a_paid_gemini_tier():
    settings = resolve({}, env={})
    assert (settings.max_concurrent_requests, settings.requests_per_minute, settings.tokens_per_minute) == (
        32,
        2000,
        3_000_000,
    )
    assert settings.api_processes == 1
    with pytest.raises(ConfigError, match="config key max_concurrent_requests: 0 is less than the minimum"):
        resolve({"max_concurrent_requests": 0}, env={})
    with pytest.raises(ConfigError, match="config key requests_per_minute"):
        resolve({"requests_per_minute": 0}, env={})


def test_the_workflow_takes_a_boolean_from_the_command_line(tmp_path):
    from conftest import copy_sample
    from support.workflow import snakemake

    copy_sample(tmp_path)
    proc = snakemake(tmp_path, "--dry-run", "--config", "reuse_answers=false")
    assert "Invalid configuration" not in proc.stdout + proc.stderr


def test_every_default_comes_from_the_schema():
    settings = resolve({}, env={})
    for name, spec in schema()["properties"].items():
        if spec.get("default") is not None and name not in ("subjects", "documents"):
            assert getattr(settings, name) == spec["default"], name
    assert settings.batch_size == schema()["properties"]["batch_size"]["x-fallback"]
    assert settings.provider == schema()["properties"]["provider"]["x-fallback"]


def test_the_schema_names_the_registered_providers():
    assert [p for p in schema()["properties"]["provider"]["enum"] if p] == list(PROVIDERS)
    with pytest.raises(ConfigError, match=r"LLM_PRIMARY=.nope. is not a provider\. Allowed: offline, gemini"):
        resolve({}, env={"LLM_PRIMARY": "nope"})
