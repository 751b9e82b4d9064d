"""Seeded fuzzing of the case-file reader (issue 9): a few hundred generated files in every encoding,
shape, nesting, field size and type. Each one is either read, with per-row errors for bad rows, or
refused with a one-line :class:`CaseFileError`; nothing else may escape. Fast (well under a second of
reading); a larger run: ``FUZZ_CASES=5000 pytest tests/nhs_lookup/test_case_fuzz.py``."""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path

import pytest

from nhs_lookup.cases import MAX_NAME_LENGTH, CaseFileError, iter_cases
from nhs_lookup.records import CaseError
from nhs_lookup.textfile import has_visible_text

N_FILES = int(os.environ.get("FUZZ_CASES", "300"))
SEED = 20240611
NAMES = ["CT Head", "US Abdo", "MRI Knee Lt", "XR Chest", "Échographie", "Röntgen Thorax", "胸部X線", "=1+2"]
ODD = ["", " ", "\u200b", "\x00", "\ufeff", "\u202e", "\r\n", '"', "'", ",", ";", "\t", "|", "\\", "{", "["]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252", "latin-1"]


def _value(rng: random.Random):
    kind = rng.random()
    if kind < 0.45:
        return rng.choice(NAMES) + rng.choice(["", "", rng.choice(ODD)])
    if kind < 0.55:
        return rng.choice(ODD)
    if kind < 0.62:
        return "x" * rng.choice([499, 500, 501, 5000])
    if kind < 0.70:
        return rng.choice([None, 0, -1, 2**70, 3.5, True, float("1e308")])
    if kind < 0.78:
        return rng.choice([[], ["CT"], {}, {"a": "b"}, [[["deep"]]]])
    return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 30)))


def _row(rng: random.Random) -> dict:
    keys = ["EXAM_NAME", "exam_name", "MODALITY_CODE", "EXAM_CODE", "DATA_SOURCE", "acceptable", "no_match",
            "case_id", "clean_name", "extra"]  # fmt: skip
    row = {k: _value(rng) for k in rng.sample(keys, rng.randrange(0, len(keys)))}
    if rng.random() < 0.6:
        row["EXAM_NAME"] = _value(rng)
    return row


def _json_bytes(rng: random.Random) -> bytes:
    rows = [_row(rng) for _ in range(rng.randrange(0, 12))]
    shape = rng.random()
    if shape < 0.55:
        data: object = rows
    elif shape < 0.7:
        data = {rng.choice(["cases", "exams", "data", "other"]): rows}
    elif shape < 0.8:
        data = rng.choice([42, "text", None, {"a": 1}, [1, "x", None, [1]]])
    else:
        depth = rng.choice([50, 500, 5000, 50_000])
        return ("[" * depth + "]" * depth).encode()
    text = json.dumps(data, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    return text.encode(rng.choice(ENCODINGS), errors="replace")


def _csv_bytes(rng: random.Random) -> bytes:
    delimiter = rng.choice([",", ";", "\t", "|"])
    columns = rng.sample(["EXAM_NAME", "MODALITY_CODE", "EXAM_CODE", "DATA_SOURCE", "acceptable", "x"], 4)
    if rng.random() < 0.8 and "EXAM_NAME" not in columns:
        columns[0] = "EXAM_NAME"
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter)
    writer.writerow(columns)
    for _ in range(rng.randrange(0, 15)):
        cells = [
            str(_value(rng)) for _ in range(rng.choice([len(columns), len(columns), 1, len(columns) + 2]))
        ]
        writer.writerow(cells)
    text = buf.getvalue()
    if rng.random() < 0.1:
        text = text[: rng.randrange(0, len(text) + 1)]  # truncated mid-row
    if rng.random() < 0.05:
        text += '"unterminated, quote\n' + "y" * 200_000  # a field over the csv module's limit
    return text.encode(rng.choice(ENCODINGS), errors="replace")


def _junk_bytes(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return rng.randbytes(rng.randrange(0, 3000))
    if kind < 0.5:
        return b"PK\x03\x04" + rng.randbytes(200)
    if kind < 0.7:
        good = _csv_bytes(rng)
        i = rng.randrange(0, len(good) + 1)
        return good[:i] + rng.randbytes(rng.randrange(1, 20)) + good[i:]  # flipped bytes inside text
    return b"\xef\xbb\xbf" + rng.randbytes(rng.randrange(0, 100))


def _file(rng: random.Random, folder: Path, i: int) -> Path:
    kind = rng.random()
    if kind < 0.4:
        suffix, data = ".json", _json_bytes(rng)
    elif kind < 0.8:
        suffix, data = rng.choice([".csv", ".tsv", ".txt"]), _csv_bytes(rng)
    else:
        suffix, data = rng.choice([".csv", ".json"]), _junk_bytes(rng)
    path = folder / f"case_{i}{suffix}"
    path.write_bytes(data)
    return path


def test_every_fuzzed_case_file_is_read_or_refused_with_one_line(tmp_path):
    rng = random.Random(SEED)
    outcomes = {"read": 0, "refused": 0, "rows": 0, "row_errors": 0}
    for i in range(N_FILES):
        path = _file(rng, tmp_path, i)
        errors: list[CaseError] = []
        try:
            cases = list(iter_cases(path, errors))
        except CaseFileError as exc:
            message = str(exc)
            assert message and "\n" not in message and len(message) < 500, (path, message)
            outcomes["refused"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test: nothing else may escape
            pytest.fail(f"{path.name}: {type(exc).__name__}: {exc!r}"[:500])
        outcomes["read"] += 1
        outcomes["rows"] += len(cases)
        outcomes["row_errors"] += len(errors)
        for c in cases:
            name = c.query.exam_name
            assert isinstance(name, str) and has_visible_text(name) and len(name) <= MAX_NAME_LENGTH
        for e in errors:
            assert e.row >= 1 and e.message and "\n" not in e.message and e.kind
        path.unlink()
    # the generator exercises both outcomes and real rows (guards against a fuzzer that tests nothing)
    assert outcomes["read"] > N_FILES // 4 and outcomes["refused"] > N_FILES // 10, outcomes
    assert outcomes["rows"] > N_FILES // 2 and outcomes["row_errors"] > N_FILES // 2, outcomes
