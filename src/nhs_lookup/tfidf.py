"""A fitted TF-IDF vectoriser that transforms new texts without importing scikit-learn.

scikit-learn fits the vocabulary and idf weights once, when the catalogue index is built; queries are
then transformed by :class:`TfidfModel`, which reproduces ``TfidfVectorizer.transform`` bit for bit
(same analyzers, counts, sublinear tf, idf product and l2 norm) but keeps the pickled index free of
scikit-learn objects. Importing scikit-learn (and the scipy.stats it pulls in) cost most of a fresh
``nhs-lookup lookup`` process's start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from nhs_lookup.csr import Csr, indptr_of

_WHITE_SPACES = re.compile(r"\s\s+")


def _char_wb(doc: str, min_n: int, max_n: int) -> list[str]:
    """Character n-grams inside word boundaries, words padded with a space (sklearn ``char_wb``)."""
    grams: list[str] = []
    for w in _WHITE_SPACES.sub(" ", doc.lower()).split():
        grams.extend(_word_grams(w, min_n, max_n))
    return grams


def _word_grams(word: str, min_n: int, max_n: int) -> list[str]:
    w = f" {word} "
    w_len = len(w)
    out: list[str] = []
    for n in range(min_n, max_n + 1):
        if w_len <= n:  # a word shorter than n counts once, and no longer n-grams follow
            out.append(w)
            break
        out.extend([w[i : i + n] for i in range(w_len - n + 1)])
    return out


def _word(doc: str, pattern: re.Pattern[str], min_n: int, max_n: int) -> list[str]:
    """Word n-grams of the pattern's tokens (sklearn ``word`` analyzer, no stop words)."""
    tokens = pattern.findall(doc.lower())
    if max_n == 1:
        return tokens
    out = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), min(max_n + 1, len(tokens) + 1)):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


@dataclass
class TfidfModel:
    """Vocabulary and idf of a fitted ``TfidfVectorizer`` (sublinear tf, l2 norm, lowercase)."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    analyzer: str  # "char_wb" or "word"
    ngram_range: tuple[int, int]
    dtype: type
    token_pattern: str | None = None

    @classmethod
    def from_sklearn(cls, vec: object) -> TfidfModel:
        """Copy what ``transform`` needs from a fitted scikit-learn ``TfidfVectorizer``."""
        for attr, want in (("sublinear_tf", True), ("norm", "l2"), ("lowercase", True), ("use_idf", True)):
            if getattr(vec, attr) != want:
                raise ValueError(f"TfidfModel needs {attr}={want!r}")
        if vec.analyzer not in ("char_wb", "word") or vec.strip_accents or vec.stop_words or vec.binary:
            raise ValueError("TfidfModel supports plain char_wb and word analyzers only")
        return cls(
            vocabulary=dict(vec.vocabulary_),
            idf=np.array(vec.idf_),
            analyzer=vec.analyzer,
            ngram_range=tuple(vec.ngram_range),
            dtype=vec.dtype,
            token_pattern=vec.token_pattern if vec.analyzer == "word" else None,
        )

    def forget(self) -> None:
        """Drop the word -> columns memo (for benchmarks of a cold start)."""
        self.__dict__.pop("_word_ids", None)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_word_ids"}  # the memo stays out of caches

    def _ids(self, doc: str) -> list[int]:
        """Vocabulary columns of the document's n-grams (out-of-vocabulary n-grams dropped)."""
        vocab = self.vocabulary
        if self.analyzer != "char_wb":
            return [j for j in map(vocab.get, self._analyze(doc)) if j is not None]
        cache = self.__dict__.setdefault("_word_ids", {})  # word -> its columns (names share words)
        lo, hi = self.ngram_range
        out: list[int] = []
        for w in _WHITE_SPACES.sub(" ", doc.lower()).split():
            ids = cache.get(w)
            if ids is None:
                if len(cache) > 200_000:
                    cache.clear()
                ids = cache[w] = [j for j in map(vocab.get, _word_grams(w, lo, hi)) if j is not None]
            out.extend(ids)
        return out

    def _analyze(self, doc: str) -> list[str]:
        lo, hi = self.ngram_range
        if self.analyzer == "char_wb":
            return _char_wb(doc, lo, hi)
        return _word(doc, re.compile(self.token_pattern or r"(?u)\b\w\w+\b"), lo, hi)

    def transform(self, docs: list[str]) -> Csr:
        """(len(docs), V) l2-normalised sublinear TF-IDF rows, as ``TfidfVectorizer.transform``
        (returned as :class:`Csr`: the same arrays, built without importing scipy)."""
        ids: list[int] = []
        lens: list[int] = []
        for doc in docs:
            row = self._ids(doc)
            ids.extend(row)
            lens.append(len(row))
        # The vocabulary maps distinct n-grams to distinct columns: counting (row, column) keys is
        # counting n-grams; np.unique sorts the keys, so columns come sorted within each row, as
        # scipy's sort_indices leaves sklearn's output.
        v = max(len(self.vocabulary), 1)
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
        keys, counts = np.unique(rows * v + np.asarray(ids, dtype=np.int64), return_counts=True)
        x = Csr(
            counts.astype(np.intc).astype(self.dtype),
            (keys % v).astype(np.int32),
            indptr_of(keys // v, len(docs)),
            (len(docs), len(self.vocabulary)),
        )
        np.log(x.data, x.data)
        x.data += 1.0
        x.data *= self.idf[x.indices]
        _normalize_rows(x)
        return x


def _normalize_rows(x: Csr) -> None:
    """In-place l2 row norm with sklearn's arithmetic: squares in the data dtype, summed in order in
    double precision (from 0.0), each value divided in double and stored back. The squares sit in a
    (longest row, rows) zero-padded array added up one position at a time (a numpy sum could pair the
    terms differently); adding the padding's 0.0 changes no sum."""
    data = x.data
    ptr = np.asarray(x.indptr, dtype=np.int64)
    lens = np.diff(ptr)
    rows = len(lens)
    norms = np.ones(len(data), dtype=np.float64)
    if rows and len(data):
        pos = np.arange(len(data), dtype=np.int64) - np.repeat(ptr[:-1], lens)  # place within its row
        squares = np.zeros((int(lens.max()), rows), dtype=np.float64)
        squares[pos, np.repeat(np.arange(rows), lens)] = data * data
        totals = np.zeros(rows, dtype=np.float64)
        for position in squares:  # the k-th value of every row, in order
            totals += position
        row_norm = np.where(totals != 0.0, np.sqrt(totals), 1.0)
        norms = np.repeat(row_norm, lens)
    x.data[:] = (data.astype(np.float64) / norms).astype(data.dtype)
