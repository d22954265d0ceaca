"""Decode UTF-8 input files, locating the first bad byte in the file as it is on disk."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class BadByte:
    """The first byte that is not UTF-8: its value, offset in the file and 1-based line."""

    value: int
    offset: int
    line: int

    def describe(self) -> str:
        return f"byte 0x{self.value:02x} on line {self.line}"


def decode_utf8(data: bytes) -> tuple[str, BadByte | None]:
    """The text without a leading byte-order mark, or None and the first bad byte.

    The ``utf-8-sig`` codec reports positions relative to the data after the mark, three bytes
    short of the file's own offsets; decoding after stripping the mark here keeps them right.
    """
    skip = len(BOM) if data.startswith(BOM) else 0
    try:
        return data[skip:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        return "", BadByte(data[offset], offset, data[:offset].count(b"\n") + 1)


def decode_utf8_lenient(data: bytes) -> str:
    """The text without a byte-order mark, undecodable bytes replaced by U+FFFD."""
    skip = len(BOM) if data.startswith(BOM) else 0
    return data[skip:].decode("utf-8", errors="replace")
