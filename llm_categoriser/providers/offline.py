"""The offline provider: deterministic rules, no network, no model download.

It answers with the same JSON text an LLM would, so its answers go through the same parsing
and validation; its rows say ``offline`` in the provider column.
"""

from __future__ import annotations

import json

from .. import offline_rules
from ..models import Issue
from ..settings import OFFLINE_MODEL
from .base import Answer, Request


def issue_from_entry(batch: dict, entry: dict) -> Issue:
    return Issue(
        subject=batch["subject"],
        filename=batch["filename"],
        page=entry.get("page"),
        rule_id=entry.get("rule_id", ""),
        type=entry.get("type", ""),
        issue=entry.get("issue", ""),
        message=entry.get("message", ""),
        suggestions=entry.get("suggestions", ""),
        context=entry.get("context", ""),
        pass_code=entry.get("pass_code", ""),
        row=0,
        key=entry.get("key", ""),
    )


class OfflineProvider:
    name = "offline"
    model = OFFLINE_MODEL

    def generate(self, request: Request) -> Answer:
        batch = request.batch
        pages = {p["page"]: p["text"] for p in batch["pages"]}
        answers = []
        for entry in batch["issues"]:
            if entry["local_id"] not in request.local_ids:
                continue
            issue = issue_from_entry(batch, entry)
            page_text = pages.get(entry.get("context_page"))
            category, confidence, reason = offline_rules.classify(issue, page_text, entry.get("hints") or {})
            answers.append(
                {
                    "issue_id": entry["local_id"],
                    "error_category": str(category),
                    "confidence_score": confidence,
                    "reasoning": reason,
                }
            )
        text = json.dumps(answers, ensure_ascii=False)
        chars = len(request.system) + len(request.user)
        return Answer(text=text, input_tokens=chars // 4, output_tokens=len(text) // 4)
