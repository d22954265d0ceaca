"""What the tests of the Gemini emulator share: prompts, a ``google-genai`` client pointed at an
emulator, batch-creation helpers, and the fixtures of one emulator and client per module (``emu``
and ``client`` reset the emulator for each test). Registered as a pytest plugin in
``tests/conftest.py``; a module that defines its own ``emu`` or ``client`` fixture keeps it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from support.emulators.gemini import (
    GeminiEmulator,
)

MODEL = "gemini-2.5-flash"
TESTS = Path(__file__).resolve().parents[1]


def make_prompt(*rows: tuple[int, str]) -> str:
    lines = [
        "Categorise each LanguageTool flag below.",
        "",
        "| issue_id | rule_id | message | context |",
        "|---|---|---|---|",
    ]
    lines += [f"| {issue_id} | RULE_{issue_id} | {text} | ...{text}... |" for issue_id, text in rows]
    lines += ["", "Answer with a JSON array."]
    return "\n".join(lines)


PROMPT = make_prompt((1, "teh cat"), (2, "a apple"), (3, "colour/color"))


class Verdict(BaseModel):
    issue_id: int
    error_category: str
    confidence_score: int
    reasoning: str


def make_client(emulator: GeminiEmulator, api_key: str = "test-key") -> genai.Client:
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=emulator.url))


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[GeminiEmulator]:
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def shared_client(shared_emu: GeminiEmulator) -> genai.Client:
    # genai.Client() builds SSL contexts (~0.1 s): share one per module.
    return make_client(shared_emu)


@pytest.fixture
def emu(shared_emu: GeminiEmulator) -> GeminiEmulator:
    shared_emu.reset()
    shared_emu.answer_fn = None
    return shared_emu


@pytest.fixture
def client(emu: GeminiEmulator, shared_client: genai.Client) -> genai.Client:
    return shared_client


def inline_request(prompt: str, key: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "config": {"response_mime_type": "application/json"},
    }
    if key is not None:
        request["metadata"] = {"key": key}
    return request


def create_inline(client: genai.Client, keys: list[str], **config: Any) -> types.BatchJob:
    prompts = [make_prompt((i + 1, f"text {key}")) for i, key in enumerate(keys)]
    return client.batches.create(
        model=MODEL,
        src=[inline_request(p, k) for p, k in zip(prompts, keys, strict=True)],
        config=config or None,
    )


def jsonl_bytes(keys: list[str]) -> bytes:
    lines = [
        json.dumps(
            {
                "key": key,
                "request": {
                    "contents": [{"role": "user", "parts": [{"text": make_prompt((i, key))}]}],
                    "generation_config": {"response_mime_type": "application/json"},
                },
            }
        )
        for i, key in enumerate(keys)
    ]
    return ("\n".join(lines) + "\n").encode()


def create_from_file(client: genai.Client, keys: list[str]) -> types.BatchJob:
    uploaded = client.files.upload(
        file=io.BytesIO(jsonl_bytes(keys)),
        config={"mime_type": "jsonl", "display_name": "requests"},
    )
    assert uploaded.name is not None
    return client.batches.create(model=MODEL, src=uploaded.name)


def download_lines(client: genai.Client, job: types.BatchJob) -> list[dict[str, Any]]:
    assert job.dest is not None
    assert job.dest.file_name is not None
    data = client.files.download(file=job.dest.file_name)
    return [json.loads(line) for line in data.decode().splitlines() if line]


def error_detail(exc: errors.APIError, type_suffix: str) -> dict[str, Any]:
    details = exc.details["error"]["details"]
    return next(d for d in details if d["@type"].endswith(type_suffix))
