"""Text normalisation shared by exam names and catalogue rows.

Pipeline: lower-case -> drop RIS code before "^" -> remove admin noise -> symbol rewrites (C+, C-,
w/wo, x-ray, ordinals, "&") -> tokens -> phrase rewrites (abbreviations, synonyms, canonical
anatomy; longest phrase first) -> optional typo correction of unknown tokens against a lexicon.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import lru_cache

from nhs_lookup.vocab import Vocabulary, default_vocabulary

_TOKEN = re.compile(r"[a-z0-9]+")
_CARET_CODE = re.compile(r"^\s*[a-z0-9_.\-]*\^")


def strip_noise(text: str, vocab: Vocabulary | None = None) -> str:
    """Lower-case, drop a leading "CODE^" and administrative noise; keep everything else."""
    vocab = vocab or default_vocabulary()
    t = text.lower()
    t = _CARET_CODE.sub(" ", t)
    for pattern in vocab.noise:
        t = pattern.sub(" ", t)
    return t


def apply_symbols(text: str, vocab: Vocabulary) -> str:
    for pattern, repl in vocab.symbols:
        text = pattern.sub(repl, text)
    return text


def _phrase_index(vocab: Vocabulary) -> tuple[dict[str, list[tuple[tuple[str, ...], str]]], int]:
    index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    longest = 1
    for key, value in vocab.phrases.items():
        toks = tuple(key.split())
        if not toks:
            continue
        index.setdefault(toks[0], []).append((toks, value))
        longest = max(longest, len(toks))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))
    return index, longest


# id(vocab) -> (the vocabulary, kept so its id is never reused while cached; its phrase index)
_PHRASE_CACHE: dict[int, tuple[Vocabulary, tuple[dict[str, list[tuple[tuple[str, ...], str]]], int]]] = {}


def rewrite_phrases(tokens: list[str], vocab: Vocabulary) -> list[str]:
    """Replace known phrases (longest first, left to right) by their canonical form."""
    hit = _PHRASE_CACHE.get(id(vocab))
    if hit is None or hit[0] is not vocab:
        hit = _PHRASE_CACHE[id(vocab)] = (vocab, _phrase_index(vocab))
    index, _ = hit[1]
    out: list[str] = []
    i = 0
    n = len(tokens)
    while i < n:
        entries = index.get(tokens[i])
        if entries:
            for toks, value in entries:
                k = len(toks)
                if tuple(tokens[i : i + k]) == toks:
                    out.extend(value.split())
                    i += k
                    break
            else:
                out.append(tokens[i])
                i += 1
        else:
            out.append(tokens[i])
            i += 1
    return out


def correct_typos(tokens: list[str], lexicon: Collection[str], cutoff: float = 88.0) -> list[str]:
    """Replace tokens absent from *lexicon* by their closest lexicon word (strict cutoff, >= 5 letters)."""
    from rapidfuzz import fuzz, process

    # frozensets cache their hash, so the key costs nothing after the first call
    key = (hash(lexicon), len(lexicon), cutoff) if isinstance(lexicon, frozenset) else None
    cache = _TYPO_CACHE.setdefault(key, {}) if key is not None else {}
    if len(cache) > 50_000:
        cache.clear()
    out = []
    for tok in tokens:
        if len(tok) >= 5 and tok.isalpha() and tok not in lexicon:
            fixed = cache.get(tok)
            if fixed is None:
                hit = process.extractOne(tok, lexicon, scorer=fuzz.ratio, score_cutoff=cutoff)
                fixed = cache[tok] = hit[0] if hit is not None else tok
            tok = fixed
        out.append(tok)
    return out


# (lexicon hash, size, cutoff) -> token -> correction
_TYPO_CACHE: dict[tuple[int, int, float], dict[str, str]] = {}


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def rewrite_exact(tokens: list[str], phrases: Mapping[str, str], max_len: int = 3) -> list[str]:
    """Replace phrases of a small mapping (longest first, left to right); used for the
    modality-conditioned abbreviations, applied before the general ones."""
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        for k in range(min(max_len, n - i), 0, -1):
            value = phrases.get(" ".join(tokens[i : i + k]))
            if value is not None:
                out.extend(value.split())
                i += k
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def normalize_tokens(
    text: str,
    vocab: Vocabulary | None = None,
    lexicon: Collection[str] | None = None,
    modality_phrases: Mapping[str, str] | None = None,
    *,
    stripped: str | None = None,
) -> list[str]:
    """The canonical token list of *text* (see module docstring). *modality_phrases*: rewrites that
    hold for the name's modality only (``indications.yaml`` ``modality_abbreviations``). *stripped*: ``strip_noise(text)`` when the caller has it already."""
    vocab = vocab or default_vocabulary()
    t = apply_symbols(stripped if stripped is not None else strip_noise(text, vocab), vocab)
    tokens = tokenize(t)
    if modality_phrases:
        tokens = rewrite_exact(tokens, modality_phrases)
    if lexicon:
        tokens = correct_typos(tokens, lexicon)
    return rewrite_phrases(tokens, vocab)


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Canonical normalised text with the bundled vocabulary (cached)."""
    return " ".join(normalize_tokens(text))
