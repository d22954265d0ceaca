"""The openai and mistral providers and the fallback chain through Snakemake, with the real SDKs
against loopback emulators, on the bundled sample corpus (197 flags)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.emulators.mistral import MistralEmulator
from support.emulators.openai import OpenAIEmulator
from support.workflow import read_rows, snakemake

pytestmark = pytest.mark.slow
OPENAI_KEY = "sk-FAKE-workflow-openai-d41c7a"
MISTRAL_KEY = "FAKE-workflow-mistral-8e2f05"
FLAGS = 197


def rows(work: Path) -> list[dict[str, str]]:
    return [r for p in sorted((work / "Documents").glob("*/document_reports/*.csv")) for r in read_rows(p)]


def summary(work: Path) -> dict:
    return json.loads((work / "Documents" / "run-summary.json").read_text(encoding="utf-8"))


def assert_no_secret(work: Path, outputs: str, *keys: str) -> None:
    for path in work.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for key in keys:
                assert key.encode() not in data, f"API key written to {path}"
    for key in keys:
        assert key not in outputs


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_openai_answers_every_flag(work, mode):
    with OpenAIEmulator(api_keys=[OPENAI_KEY], batch_mode="auto", complete_after_polls=1) as emu:
        emu.set_default_batch_plan(item_errors=[0])  # the first request of every job fails
        env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": emu.url}
        proc = snakemake(work, "--config", "provider=openai", f"mode={mode}", env=env)
        stats = emu.stats()
    found = rows(work)
    assert len(found) == FLAGS and {r["status"] for r in found} == {"ok"}
    assert {(r["provider"], r["model"]) for r in found} == {("openai", "gpt-4.1-mini")}
    if mode == "batch":  # each failed item asked again alone, synchronously
        assert stats["batch_creations"] >= 1
        assert stats["chat_completions"] == stats["batch_creations"]
    else:
        assert stats["batch_creations"] == 0 and stats["chat_completions"] == summary(work)["batches"]
    assert_no_secret(work, proc.stdout + proc.stderr, OPENAI_KEY)


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_mistral_answers_every_flag(work, mode):
    with MistralEmulator(api_keys=[MISTRAL_KEY], batch_mode="auto", complete_after_polls=1) as emu:
        proc = snakemake(
            work,
            "--config",
            "provider=mistral",
            f"mode={mode}",
            f"mistral_base_url={emu.url}",
            env={"MISTRAL_API_KEY": MISTRAL_KEY},
        )
        stats = emu.stats()
    found = rows(work)
    assert len(found) == FLAGS and {r["status"] for r in found} == {"ok"}
    assert {(r["provider"], r["model"]) for r in found} == {("mistral", "mistral-small-latest")}
    assert (stats["batch_creations"] >= 1) == (mode == "batch")
    assert_no_secret(work, proc.stdout + proc.stderr, MISTRAL_KEY)


def test_the_first_provider_runs_out_of_quota_mid_run_and_the_second_answers_the_rest(work):
    with (
        OpenAIEmulator(api_keys=[OPENAI_KEY], quota=12) as first,
        MistralEmulator(api_keys=[MISTRAL_KEY]) as second,
    ):
        env = {
            "LLM_PRIMARY": "openai",
            "LLM_FALLBACK": "mistral",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": first.url,
            "MISTRAL_API_KEY": MISTRAL_KEY,
        }
        proc = snakemake(work, "--config", f"mistral_base_url={second.url}", env=env)
        answered = {"openai": first.stats()["answers"], "mistral": second.stats()["answers"]}
    found = rows(work)
    assert len(found) == FLAGS and {r["status"] for r in found} == {"ok"}
    by_provider = {p: sum(1 for r in found if r["provider"] == p) for p in ("openai", "mistral")}
    assert by_provider["openai"] > 0 and by_provider["mistral"] > 0
    assert by_provider["openai"] + by_provider["mistral"] == FLAGS
    assert {r["model"] for r in found if r["provider"] == "mistral"} == {"mistral-small-latest"}
    assert answered["openai"] == 12
    assert summary(work)["answers_by_provider"] == by_provider
    output = proc.stdout + proc.stderr
    most_first = sorted(by_provider.items(), key=lambda item: -item[1])
    assert "Answered by: " + ", ".join(f"{name} {count}" for name, count in most_first) in output
    assert_no_secret(work, output, OPENAI_KEY, MISTRAL_KEY)


def test_an_invalid_key_stops_the_run_without_falling_back(work):
    with OpenAIEmulator(api_keys=[OPENAI_KEY]) as first, MistralEmulator(api_keys=[MISTRAL_KEY]) as second:
        wrong = "sk-FAKE-wrong-key-0f0f0f0f"
        env = {
            "OPENAI_API_KEY": wrong,
            "OPENAI_BASE_URL": first.url,
            "MISTRAL_API_KEY": MISTRAL_KEY,
        }
        proc = snakemake(
            work,
            "--config",
            "provider=openai",
            "fallback=mistral",
            f"mistral_base_url={second.url}",
            env=env,
            check=False,
        )
        assert second.stats()["chat_completions"] == 0
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "OpenAI rejected the API key" in output and "OPENAI_API_KEY" in output
    assert_no_secret(work, output, wrong, MISTRAL_KEY)
