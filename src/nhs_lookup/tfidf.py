"""A fitted TF-IDF vectoriser that transforms new texts without importing scikit-learn.

scikit-learn fits the vocabulary and idf weights once, when the catalogue index is built; queries are
then transformed by :class:`TfidfModel`, which reproduces ``TfidfVectorizer.transform`` bit for bit
(same analyzers, counts, sublinear tf, idf product and l2 norm) but keeps the pickled index free of
scikit-learn objects. Importing scikit-learn (and the scipy.stats it pulls in) cost most of a fresh
``nhs-lookup lookup`` process's start-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

_WHITE_SPACES = re.compile(r"\s\s+")


def _char_wb(doc: str, min_n: int, max_n: int) -> list[str]:
    """Character n-grams inside word boundaries, words padded with a space (sklearn ``char_wb``)."""
    grams: list[str] = []
    append = grams.append
    for w in _WHITE_SPACES.sub(" ", doc.lower()).split():
        w = f" {w} "
        w_len = len(w)
        for n in range(min_n, max_n + 1):
            offset = 0
            append(w[offset : offset + n])
            while offset + n < w_len:
                offset += 1
                append(w[offset : offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return grams


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

    def _analyze(self, doc: str) -> list[str]:
        lo, hi = self.ngram_range
        if self.analyzer == "char_wb":
            return _char_wb(doc, lo, hi)
        return _word(doc, re.compile(self.token_pattern or r"(?u)\b\w\w+\b"), lo, hi)

    def transform(self, docs: list[str]) -> sp.csr_matrix:
        """(len(docs), V) l2-normalised sublinear TF-IDF rows, as ``TfidfVectorizer.transform``."""
        vocab = self.vocabulary
        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for doc in docs:
            counter: dict[int, int] = {}
            for gram in self._analyze(doc):
                j = vocab.get(gram)
                if j is not None:
                    counter[j] = counter.get(j, 0) + 1
            indices.extend(counter)
            counts.extend(counter.values())
            indptr.append(len(indices))
        x = sp.csr_matrix(
            (np.asarray(counts, dtype=np.intc), np.asarray(indices, dtype=np.int32), indptr),
            shape=(len(docs), len(vocab)),
            dtype=self.dtype,
        )
        x.sort_indices()
        np.log(x.data, x.data)
        x.data += 1.0
        x.data *= self.idf[x.indices]
        _normalize_rows(x)
        return x


def _normalize_rows(x: sp.csr_matrix) -> None:
    """In-place l2 row norm with sklearn's arithmetic: squares in the data dtype, summed in order
    in double precision, each value divided in double and stored back."""
    data = x.data
    squares = (data * data).tolist()
    ptr = x.indptr.tolist()
    norms = np.ones(len(data), dtype=np.float64)
    for a, b in zip(ptr[:-1], ptr[1:], strict=True):
        total = 0.0
        for v in squares[a:b]:
            total += v
        if total != 0.0:
            norms[a:b] = math.sqrt(total)
    x.data[:] = (data.astype(np.float64) / norms).astype(data.dtype)
