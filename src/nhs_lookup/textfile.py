"""Reading text files the way hospital staff save them, and writing CSV they can open safely.

Excel writes CSV as UTF-8 (with or without a BOM), as UTF-16 ("Unicode text", with a BOM) or in the
Windows code page (cp1252). :func:`detect_encoding` tells them apart and refuses binary files (a zip
or an .xlsx renamed .csv, images, random bytes) with a one-line reason. :func:`sniff_delimiter` reads
the header line to choose between ``,`` ``;`` tab and ``|``. :func:`safe_cell` neutralises cells that
a spreadsheet would run as a formula (OWASP "CSV injection").
"""

from __future__ import annotations

import codecs
import csv
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

HEAD_BYTES = 64 * 1024
BINARY_SHARE = 0.005  # more control bytes than this share of the head: a binary file
DELIMITERS = ",;\t|"

# Leading bytes of common binary formats, with the name used in the error message.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook?)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (.xls?)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ", "an xz archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF)"),
)
# Bytes that never occur in a text file (C0 controls other than tab, LF, FF, CR, and ESC).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))


class TextFileError(ValueError):
    """A file that is not readable text (binary, or an encoding we cannot tell)."""


def _is_utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when every other byte of ASCII-range text is NUL."""
    if len(head) < 4 or len(head) % 2:
        head = head[: len(head) - len(head) % 2]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _valid_utf8(path: Path) -> bool:
    """Whole-file UTF-8 check in 1 MiB blocks (fast, bounded memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        try:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_encoding(path: str | Path) -> str:
    """The encoding to read *path* with: utf-8-sig, utf-16, utf-8 or cp1252. Raises
    :class:`TextFileError` (one line) for binary content or a file that cannot be opened."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise TextFileError(f"{p}: cannot open ({exc.strerror or exc})") from None
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    else:
        encoding = ""
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise TextFileError(f"{p}: this is {what}, not a text case file (save it as CSV or JSON)")
    utf16 = _is_utf16_without_bom(head) if not encoding else None
    if utf16:
        return utf16
    bad = len(head) - len(head.translate(None, _CONTROL))
    # A stray NUL in a text export is a bad cell, not a binary file.
    if bad > max(2, BINARY_SHARE * len(head)):
        raise TextFileError(f"{p}: binary content ({bad} control byte(s) in the first {len(head)} bytes)")
    if _valid_utf8(p):
        return encoding or "utf-8"
    return "cp1252"


def read_text(path: str | Path) -> str:
    """The whole file as text, decoded by :func:`detect_encoding` (cp1252 falls back to Latin-1
    for its five undefined bytes, so a cp1252 file never fails half-way)."""
    p = Path(path)
    encoding = detect_encoding(p)
    data = p.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        if encoding == "cp1252":
            return data.decode("latin-1")
        raise TextFileError(f"{p}: not valid {encoding} text") from None


def open_text(path: str | Path) -> IO[str]:
    """Open *path* for streaming reads (``newline=''`` for the csv module) in its detected encoding."""
    p = Path(path)
    encoding = detect_encoding(p)
    errors = "strict" if encoding != "cp1252" else "replace"
    return p.open(newline="", encoding=encoding, errors=errors)


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header line: ``,`` ``;`` tab or ``|`` (``,`` when there is one column)."""
    line = header.strip("\r\n")
    if not line:
        return ","
    try:
        return csv.Sniffer().sniff(line, delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: line.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


# --------------------------------------------------------------------------- names and cells
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


def has_visible_text(text: str) -> bool:
    """False for strings made only of spaces, control or format characters (zero-width space,
    BOM, direction marks, ...): such a name is empty, whatever its length."""
    return any(unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading
    single quote (OWASP). Numbers, booleans and None are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`safe_cell` applied to every value of one CSV row."""
    return {k: safe_cell(v) for k, v in row.items()}


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` that neutralises formula cells: every CSV the project writes uses it."""

    def writeheader(self) -> Any:
        return super().writerow({f: safe_cell(f) for f in self.fieldnames})

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow(safe_row(rowdict))

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)
