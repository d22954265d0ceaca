"""The OpenAI provider, through the official ``openai`` SDK (``client.py``, ``batch.py``).

Any OpenAI-compatible server works in sync mode (``openai_base_url`` or ``OPENAI_BASE_URL``);
batch mode needs a server with the Batch API (``/v1/files`` and ``/v1/batches``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...costs.estimate import TokenCalibration
from ...costs.prices import CataloguePrices
from ..chat_completions import ChatCompletionsSpec

if TYPE_CHECKING:
    from ...settings import Settings
    from .batch import OpenAIBatchBackend

KEY_VARIABLES = ("OPENAI_API_KEY",)
BASE_URL_VARIABLE = "OPENAI_BASE_URL"


class OpenAISpec(ChatCompletionsSpec):
    name = "openai"
    key_variables = KEY_VARIABLES
    api_slots = 1
    prices = CataloguePrices("openai")  # OpenAI's list prices in genai-prices (Batch API: half)
    calibration = TokenCalibration(
        chars_per_token=4.0, source="OpenAI documentation: a token is about four characters of English"
    )

    def model(self, settings: Settings) -> str:
        return settings.openai_model

    def needs_key(self, settings: Settings) -> bool:
        """A server named by ``openai_base_url`` or ``OPENAI_BASE_URL`` may need none."""
        return not (settings.openai_base_url or os.environ.get(BASE_URL_VARIABLE, "").strip())

    def backend_class(self) -> type[OpenAIBatchBackend]:
        from .batch import OpenAIBatchBackend

        return OpenAIBatchBackend


SPEC = OpenAISpec()
