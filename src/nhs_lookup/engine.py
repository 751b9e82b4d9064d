"""The lookup engine: parse -> retrieve -> score -> result, with a prepare/rank split for tuning.

``prepare`` does everything that does not depend on the scoring config (parsing, candidate retrieval,
feature computation); ``rank`` applies a :class:`ScoringConfig` to a prepared query and is fast enough
for an optimiser to call thousands of times.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

import numpy as np

from nhs_lookup.catalogue import Catalogue, cache_dir, load_catalogue, read_cache, write_cache
from nhs_lookup.components import ParsedName, parse_name
from nhs_lookup.config import LookupConfig, ScoringConfig
from nhs_lookup.records import Candidate, CatalogueEntry, Components, ExamQuery, LookupResult
from nhs_lookup.retrieval import RETRIEVE_K, CatalogueIndex
from nhs_lookup.scoring import PreparedQuery, RankOutput, calibrate, score, score_many
from nhs_lookup.vocab import default_vocabulary

__all__ = ["LookupEngine", "PreparedQuery"]

UNSPECIFIC_NOTE = "the name states no body part or procedure beyond the modality"
HARD_NOTE = "violates a hard constraint (laterality, contrast, modality or interventional)"
MODALITY_ONLY_CONFIDENCE = 0.5  # a modality-only name never reaches the bulk-approve band
# Queries prepared and scored together: the (BATCH, catalogue) float32 arrays (~2.5 MB) stay in cache.
# On a 1 MB L2 / 32 MB L3 machine, prepare_batch alone ran 15-20% faster than with batches of 512
# (64-256 alike); whole lookup_many runs were within the machine's run-to-run noise.
BATCH = 128


# (raw top score, top-1 minus top-2 margin, hard violations) -> confidence in [0, 1]
Calibrator = Callable[[float, float, float], float]


class LookupEngine:
    """Map RIS exam names to catalogue rows. Build with :meth:`load`.

    Hooks for learned knowledge: ``extra_vocabulary`` (phrase -> catalogue term rewrites applied to
    exam names, e.g. a site's shorthand learned from labelled pairs) and ``calibrator`` (replaces the
    built-in logistic confidence; ``config.min_confidence`` stays the no-match threshold). The raw
    score stays available as ``result.candidates[0].score``."""

    def __init__(
        self,
        config: LookupConfig,
        catalogue: Catalogue,
        index: CatalogueIndex,
        *,
        extra_vocabulary: Mapping[str, str] | None = None,
        calibrator: Calibrator | None = None,
    ) -> None:
        self.config = config
        self.catalogue = catalogue
        self.index = index
        self.calibrator = calibrator
        self.vocabulary = default_vocabulary()
        self.set_extra_vocabulary(extra_vocabulary or {})

    def set_extra_vocabulary(self, extra: Mapping[str, str]) -> None:
        """Add phrase rewrites (token phrase -> catalogue wording) for exam names; clears the parse cache.

        Catalogue rows keep the bundled vocabulary (so the on-disk catalogue cache stays valid)."""
        from nhs_lookup.unknown_tokens import known_words

        self.vocabulary = default_vocabulary().extended(extra)
        # Typo correction targets: catalogue words and every word the vocabulary knows (so a known
        # word such as "interventional" is never "corrected" to a catalogue word).
        self._lexicon = frozenset(
            w for w in known_words(self.vocabulary, self.catalogue.lexicon()) if w.isalpha()
        )
        self._parse_cache: dict[tuple[str, str | None], ParsedName] = {}

    @property
    def lexicon(self) -> frozenset[str]:
        """Words the parser understands (catalogue words and vocabulary phrase words)."""
        return self._lexicon

    # ------------------------------------------------------------------------------------- build

    @classmethod
    def load(
        cls,
        config: LookupConfig | None = None,
        catalogue_path: str | Path | None = None,
        *,
        extra_vocabulary: Mapping[str, str] | None = None,
        calibrator: Calibrator | None = None,
    ) -> LookupEngine:
        """Catalogue: *catalogue_path*, else ``config.catalogue_path``, else $NHS_LOOKUP_CATALOGUE, else
        the bundled sample. Parsed catalogue and index come from the disk cache when valid.
        *extra_vocabulary* and *calibrator*: see the class docstring."""
        config = config or LookupConfig()
        path = catalogue_path or config.catalogue_path or os.environ.get("NHS_LOOKUP_CATALOGUE") or None
        catalogue = load_catalogue(path, config.cache_dir)
        backend = config.semantic_backend or "tfidf"
        index = None
        cpath = None
        if backend == "tfidf":
            cpath = cache_dir(config.cache_dir) / f"index-{catalogue.fingerprint}-{_index_fingerprint()}.pkl"
            cached = read_cache(cpath)
            if isinstance(cached, CatalogueIndex) and cached.n == len(catalogue):
                index = cached
        if index is None:
            index = CatalogueIndex.build(catalogue, backend, config.semantic_model)
            if cpath is not None:
                write_cache(cpath, index)
        return cls(config, catalogue, index, extra_vocabulary=extra_vocabulary, calibrator=calibrator)

    # ----------------------------------------------------------------------------------- parsing

    def parse(self, query: ExamQuery) -> ParsedName:
        key = (query.exam_name, query.modality_code)
        hit = self._parse_cache.get(key)
        if hit is None:
            hit = parse_name(query.exam_name, query.modality_code, self.vocabulary, lexicon=self._lexicon)
            if len(self._parse_cache) > 100_000:
                self._parse_cache.clear()
            self._parse_cache[key] = hit
        return hit

    # ------------------------------------------------------------------------- prepare and rank

    def prepare(self, query: ExamQuery) -> PreparedQuery:
        """Parsing, retrieval and every config-independent feature for one query."""
        return self.prepare_many([query])[0]

    def prepare_many(self, queries: Iterable[ExamQuery], batch_size: int = BATCH) -> list[PreparedQuery]:
        """Vectorised :meth:`prepare` for many queries (one sparse product per batch; each query's
        features do not depend on its batch)."""
        queries = list(queries)
        top_k = max(RETRIEVE_K, int(self.config.scoring.retriever_top_k))
        out: list[PreparedQuery] = []
        for start in range(0, len(queries), batch_size):
            chunk = queries[start : start + batch_size]
            parsed = [self.parse(q) for q in chunk]
            # Identical parsed texts share features: compute each distinct one once.
            keys = [
                (
                    p.components.clean_text,
                    p.components.modality,
                    p.modality_source,
                    p.components.laterality,
                    p.bilateral_implied,
                    p.components.non_clinical,
                )
                for p in parsed
            ]
            uniq: dict[tuple, int] = {}
            uparsed: list[ParsedName] = []
            for k, p in zip(keys, parsed, strict=True):
                if k not in uniq:
                    uniq[k] = len(uparsed)
                    uparsed.append(p)
            prepared = self.index.prepare_batch(uparsed, top_k=top_k)
            for k, p in zip(keys, parsed, strict=True):
                pq = prepared[uniq[k]]
                if pq.components is not p.components:
                    pq = _with_components(pq, p.components)
                out.append(pq)
        return out

    def rank(
        self,
        prepared: PreparedQuery,
        scoring: ScoringConfig | None = None,
        exclude: Collection[str] = (),
        query: ExamQuery | None = None,
    ) -> LookupResult:
        """Apply *scoring* (default: the engine's) to a prepared query and build the result."""
        t0 = time.perf_counter()
        ranked = score(prepared, scoring or self.config.scoring)
        return self._finish(prepared, ranked, exclude, query, t0)

    def _finish(
        self,
        prepared: PreparedQuery,
        ranked: RankOutput,
        exclude: Collection[str],
        query: ExamQuery | None,
        t0: float,
    ) -> LookupResult:
        """Result of a scored query (*t0*: the perf_counter its timing starts from)."""
        order = ranked.order
        rows = prepared.idx[: len(prepared.idx)][order] if len(order) else order
        if exclude:
            excluded = {e.casefold() for e in exclude}
            keep = np.array(
                [self.catalogue.entries[i].name.casefold() not in excluded for i in rows], dtype=bool
            )
        else:
            keep = None
        result = self._result(prepared, ranked, rows, keep, query)
        result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return result

    def lookup(
        self, query: ExamQuery | str, *, modality_code: str | None = None, exclude: Collection[str] = ()
    ) -> LookupResult:
        """Best catalogue row for one exam name (with alternatives and components)."""
        t0 = time.perf_counter()
        if isinstance(query, str):
            query = ExamQuery(exam_name=query, modality_code=modality_code)
        elif modality_code is not None:
            query = ExamQuery(query.exam_name, modality_code, query.exam_code, query.data_source)
        result = self.rank(self.prepare(query), self.config.scoring, exclude, query=query)
        result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return result

    def lookup_many(self, queries: Iterable[ExamQuery]) -> list[LookupResult]:
        """Batch mode: vectorised preparation, then ranking per query."""
        queries = list(queries)
        prepared = self.prepare_many(queries)
        out: list[LookupResult] = []
        for start in range(0, len(prepared), BATCH):  # the batches prepare_many made: see score_many
            t0 = time.perf_counter()
            chunk = prepared[start : start + BATCH]
            ranked = score_many(chunk, self.config.scoring)  # the same scores as rank() per query
            for p, r, q in zip(chunk, ranked, queries[start : start + BATCH], strict=True):
                out.append(self._finish(p, r, (), q, t0))
        return out

    def search_catalogue(self, text: str, limit: int = 20) -> list[CatalogueEntry]:
        """Free-text catalogue search for the review UI (lexical + component retrieval order)."""
        text = (text or "").strip()
        if not text:
            return []
        exact = self.catalogue.by_name(text)
        parsed = parse_name(text, None, self.vocabulary, lexicon=self._lexicon)
        p = self.index.prepare_batch([parsed], top_k=max(limit, 1))[0]
        rows = [int(i) for i in p.idx[:limit]]
        out = [self.catalogue.entries[i] for i in rows]
        if exact is not None:
            out = [exact] + [e for e in out if e.row_id != exact.row_id]
        return out[:limit]

    # ------------------------------------------------------------------------------------ result

    def _result(
        self,
        p: PreparedQuery,
        ranked: RankOutput,
        rows: np.ndarray,
        keep: np.ndarray | None,
        query: ExamQuery | None,
    ) -> LookupResult:
        cfg = self.config
        n_alt = max(int(cfg.top_k_results), 1)
        # The first n_alt positions, kept ones only when some are excluded (a slice reads them faster).
        positions = slice(0, n_alt) if keep is None else np.flatnonzero(keep)[:n_alt]
        cands = self._candidates(ranked, rows, positions)
        q = query or ExamQuery(exam_name=p.components.clean_text)
        comps = p.components
        if not cands:
            return LookupResult(
                q, comps, None, 0.0, [], False, "not_in_catalogue", "no catalogue row left to propose"
            )
        top = cands[0].score
        second = cands[1].score if len(cands) > 1 else 0.0
        margin = top - second
        first = 0 if keep is None else int(positions[0])
        hard = float(ranked.hard[first])
        rich = getattr(self.calibrator, "result_confidence", None)  # a model on more than the raw score
        if rich is not None:
            confidence = float(rich(p, cands, hard, q, self.lexicon))
        else:
            confidence = (self.calibrator or calibrate)(top, margin, hard)
        ambiguous = margin < cfg.ambiguity_margin
        reason = None
        review = None
        if comps.non_clinical:
            reason = "non_clinical"
        elif p.q_unspecific:
            reason = "not_in_catalogue"
        elif p.q_modality_only:
            # "CT", "MRI", "+++": only the modality's generic row (if any) fits, and a person should check.
            review = "modality_only"
            if hard > 0 or not self._is_generic_row(int(rows[first])):
                reason = "not_in_catalogue"
            confidence = min(confidence, MODALITY_ONLY_CONFIDENCE)
        elif hard > 0:
            reason = "not_in_catalogue"
        elif confidence < cfg.min_confidence:
            reason = "low_confidence"
        best = None if reason else cands[0]
        explanation = _explain(comps, cands[0], reason, ambiguous, confidence)
        if review == "modality_only":
            explanation += f" Flagged for review: {UNSPECIFIC_NOTE}."
        return LookupResult(
            query=q,
            components=comps,
            best=best,
            confidence=0.0 if reason == "non_clinical" else confidence,
            candidates=cands,
            ambiguous=ambiguous,
            no_match_reason=reason,
            explanation=explanation,
            score=top,
            review_reason=review,
        )

    def _candidates(
        self, ranked: RankOutput, rows: np.ndarray, positions: slice | np.ndarray
    ) -> list[Candidate]:
        """Candidate records of the kept positions (plain Python floats of the same values)."""
        entries = self.catalogue.entries
        names = tuple(ranked.component)
        per_row = zip(*(v[positions].tolist() for v in ranked.component.values()), strict=True)
        return [  # positional (entry, score, component_scores, semantic_score, notes): a third of the cost
            Candidate(
                entries[row], sc, dict(zip(names, comp, strict=True)), sem, (HARD_NOTE,) if h > 0 else ()
            )
            for row, sc, sem, h, comp in zip(
                rows[positions].tolist(),
                ranked.scores[positions].tolist(),
                ranked.semantic[positions].tolist(),
                ranked.hard[positions].tolist(),
                per_row,
                strict=True,
            )
        ]

    def _is_generic_row(self, row: int) -> bool:
        """A row naming nothing but its modality (no body part, no other content word)."""
        idx = self.index
        return bool(idx.anat_exact_n[row] == 0 and idx.name_words_n[row] == 0 and idx.tech_n[row] == 0)


def _with_components(p: PreparedQuery, comps: Components) -> PreparedQuery:
    from dataclasses import replace

    return replace(p, components=comps)


def _explain(c: Components, top: Candidate, reason: str | None, ambiguous: bool, confidence: float) -> str:
    parts = []
    if c.modality:
        parts.append(f"modality {c.modality}")
    if c.anatomy:
        parts.append("anatomy " + ", ".join(c.anatomy))
    if c.laterality:
        parts.append(f"laterality {c.laterality}")
    if c.contrast:
        parts.append(f"contrast {c.contrast.replace('_', ' ')}")
    if c.technique:
        parts.append("technique " + ", ".join(c.technique))
    if c.interventional:
        parts.append("interventional")
    parsed = "; ".join(parts) or "no components recognised"
    if reason == "non_clinical":
        return f"Administrative entry ({c.non_clinical}): no procedure to map."
    if reason == "not_in_catalogue":
        return (
            f"Parsed: {parsed}. No catalogue row fits ({UNSPECIFIC_NOTE} or every row breaks a constraint)."
        )
    if reason == "low_confidence":
        return f"Parsed: {parsed}. Best guess '{top.entry.name}' is below the confidence threshold."
    text = f"Parsed: {parsed}. Best row '{top.entry.name}' (confidence {confidence:.2f})"
    if ambiguous:
        text += "; close alternatives exist"
    return text + "."


def _index_fingerprint() -> str:
    import hashlib

    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("retrieval.py", "semantic.py", "scoring.py", "tfidf.py", "csr.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]
