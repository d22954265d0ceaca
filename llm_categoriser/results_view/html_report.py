"""Write the self-contained HTML report: one file, no network, every value rendered as text.

The page is ``assets/report.html`` with the vendored libraries, our stylesheet and script, and
the data inlined. The data is JSON inside ``<script type="application/json">`` with ``<``, ``>``
and ``&`` escaped as ``\\u003c`` etc., so no value can close the element or open a tag; the
script reads it with ``JSON.parse`` and puts every value into the page with ``textContent``.
Library choice: docs/DESIGN.md §28.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..layout import REPORT_ASSETS_DIR

VENDOR = {
    "tabulator_js": "vendor/tabulator-6.5.3.min.js",
    "tabulator_css": "vendor/tabulator-6.5.3_simple.min.css",
    "chart_js": "vendor/chart-4.6.1.umd.min.js",
}
_SLOT = re.compile(r"@@([a-z_]+)@@")
_SOURCE_MAP = re.compile(r"^\s*(//|/\*)# sourceMappingURL=.*$", re.MULTILINE)
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embed_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element whatever the strings hold."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group(0)], text)


def _asset(name: str) -> str:
    text = (REPORT_ASSETS_DIR / name).read_text(encoding="utf-8")
    text = _SOURCE_MAP.sub("", text)  # the maps are not shipped; a dangling URL is a fetch
    if re.search(r"</(script|style)", text, re.IGNORECASE) or "<!--" in text:
        raise ValueError(f"{name} cannot be inlined: it contains </script, </style or <!--")
    return text


def _csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def render_report(payload: Mapping[str, Any], title: str = "LanguageTool triage") -> str:
    """The page; its Content-Security-Policy lets only our three inline scripts run (by hash),
    so even markup that slipped into the page could not run a script or an event handler."""
    slots = {
        "title": title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "tabulator_css": _asset(VENDOR["tabulator_css"]),
        "report_css": _asset("report.css"),
        "tabulator_js": _asset(VENDOR["tabulator_js"]),
        "chart_js": _asset(VENDOR["chart_js"]),
        "report_js": _asset("report.js"),
        "data": embed_json(payload),
    }
    slots["script_hashes"] = " ".join(_csp_hash(slots[k]) for k in ("tabulator_js", "chart_js", "report_js"))
    template = (REPORT_ASSETS_DIR / "report.html").read_text(encoding="utf-8")
    # one pass: text put into a slot is never scanned for slots again
    return _SLOT.sub(lambda m: slots[m.group(1)], template)


def write_report(path: str | Path, payload: Mapping[str, Any]) -> int:
    """Write the report atomically; return its size in bytes."""
    html = render_report(payload)
    atomic_write_text(path, html)
    return len(html.encode("utf-8"))
