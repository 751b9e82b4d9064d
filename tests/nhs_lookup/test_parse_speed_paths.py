"""The parser's fast paths give the same answers as the straightforward ones: literal guards never skip
a pattern that would match, and the length-filtered typo candidates give extractOne's answer."""

from __future__ import annotations

import json
import random
import re

import pytest
from rapidfuzz import fuzz, process

from nhs_lookup import normalize
from nhs_lookup.cases import load_cases
from nhs_lookup.regex_guard import literal_guard, may_match
from nhs_lookup.typo_candidates import length_choices, typo_candidates
from nhs_lookup.vocab import DATA_DIR, default_vocabulary

SUFFIXES = ("", " C+", " c -", " w/wo", " (Y)", " - Horizon", " at SRG", " 2nd", " T.V.", " L/S", " & ")


def _names() -> list[str]:
    """Bundled sample exam names (with symbol-laden suffixes) and catalogue names."""
    cases, _ = load_cases(DATA_DIR / "sample_cases.json")
    rows = json.loads((DATA_DIR / "sample_catalogue.json").read_text())
    out = [c.query.exam_name + s for c in cases for s in SUFFIXES]
    for r in rows:
        if isinstance(r, dict):
            out += [str(r[k]) for k in ("primary_source_name", "snomed_fsn") if r.get(k)]
    return out


def _texts() -> list[str]:
    """Every text a vocabulary pattern sees while the sample names are normalised."""
    vocab = default_vocabulary()
    out = []
    for name in _names():
        t = normalize._CARET_CODE.sub(" ", name.lower())
        for p in vocab.noise:
            out.append(t)
            t = p.sub(" ", t)
        for p, repl in vocab.symbols:
            out.append(t)
            t = p.sub(repl, t)
    return out


def test_vocabulary_guards_never_skip_a_matching_pattern():
    vocab = default_vocabulary()
    patterns = [*vocab.noise, *(p for p, _ in vocab.symbols), normalize._CARET_CODE]
    texts = _texts()
    matched = 0
    for p in patterns:
        guard = literal_guard(p)
        for t in texts:
            if p.search(t):
                matched += 1
                assert may_match(guard, t), (p.pattern, t)
    assert matched > 200  # the check saw real matches
    assert sum(literal_guard(p) is not None for p in patterns) >= len(patterns) - 2  # and real guards


def test_guarded_normalisation_equals_plain_substitution():
    vocab = default_vocabulary()
    for name in _names():
        t = normalize._CARET_CODE.sub(" ", name.lower())
        for p in vocab.noise:
            t = p.sub(" ", t)
        assert normalize.strip_noise(name, vocab) == t
        stripped = t
        for p, repl in vocab.symbols:
            t = p.sub(repl, t)
        assert normalize.apply_symbols(stripped, vocab) == t


@pytest.mark.parametrize(
    ("pattern", "guard"),
    [
        (r"\bno\s*report\b", "report"),
        (r"a?bc", "bc"),
        (r"(ab|cd)+e?", ("ab", "cd")),
        (r"[xy]z*", ("x", "y")),
        (r"\d+", None),  # no literal
        (r"(?i)report", None),  # case-insensitive: no guard
        (r"(?i:ab)c", "c"),
        (r"a*|b", None),  # one branch needs nothing
        (r"x{0,3}", None),
        (r"[^a]b", "b"),
    ],
)
def test_literal_guard_of_hand_written_patterns(pattern, guard):
    assert literal_guard(re.compile(pattern)) == guard


def test_literal_guards_are_sound_on_random_text():
    patterns = [
        r"\bc\s*\+\s*/\s*-|\+\s*/\s*-\s*c\b",
        r"(\s-\s*|\bat\s+)(ascot|mercy)(\s+radiology)?\s*$",
        r"\b([ctls])[\s-]spine\b",
        r"(?<![a-z])-\s*c\b",
        r"\bt\s*\.?\s*v\s*\.?\b(?=\s|$)",
        r"(ab)+(c|d)",
        r"(?:x|yz){2}q",
    ]
    rng = random.Random(7)
    alphabet = "abcdlstvxyzqmer+-/. "
    for pattern in map(re.compile, patterns):
        guard = literal_guard(pattern)
        assert guard is not None
        for _ in range(3000):
            t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
            if pattern.search(t):
                assert may_match(guard, t), (pattern.pattern, t)


def _typos(words: list[str], rng: random.Random) -> list[str]:
    out = []
    for w in words:
        i = rng.randrange(len(w))
        out += [w[:i] + w[i + 1 :], w[:i] + rng.choice("aeiourst") + w[i:], w[:i] + "x" + w[i + 1 :], w + "s"]
    return out


def test_length_filtered_typo_candidates_give_extract_ones_answer():
    rows = json.loads((DATA_DIR / "sample_catalogue.json").read_text())
    words = {w for r in rows if isinstance(r, dict) for w in re.findall(r"[a-z]+", str(r).lower())}
    lexicon = frozenset(w for w in words if len(w) >= 3)
    rng = random.Random(11)
    tokens = _typos(sorted(w for w in lexicon if len(w) >= 5), rng) + ["abdomn", "pelvsi", "zzzzzz"]
    found = 0
    for cutoff in (88.0, 80.0, 70.0):
        for tok in tokens:
            full = process.extractOne(tok, lexicon, scorer=fuzz.ratio, score_cutoff=cutoff)
            fast = process.extractOne(
                tok,
                typo_candidates(lexicon, tok, cutoff),
                scorer=fuzz.ratio,
                score_cutoff=cutoff,
            )
            assert (full and full[:2]) == (fast and fast[:2]), tok
            found += full is not None
    assert found > 100


def test_typo_candidates_follow_an_equal_lexicon_in_its_own_order():
    words = [f"{a}{b}word" for a in "abcdefgh" for b in "ijklmnop"]
    lex1 = frozenset(words)
    lex2 = frozenset(reversed(words))  # equal, perhaps iterating differently
    assert length_choices(lex1, 6, 88.0) == [w for w in lex1]
    assert length_choices(lex2, 6, 88.0) == [w for w in lex2]
    assert length_choices(lex1, 20, 88.0) == []  # 6-letter words cannot reach 88 against 20


def _find_phrases_reference(tokens, phrases, max_len=4):
    """The straightforward matcher: join token slices, longest first."""
    hits, i, n = [], 0, len(tokens)
    longest = max((len(p.split()) for p in phrases), default=1)
    while i < n:
        for k in range(min(max_len, longest, n - i), 0, -1):
            key = " ".join(tokens[i : i + k])
            if key in phrases:
                hits.append((i, i + k, phrases[key]))
                i += k
                break
        else:
            i += 1
    return hits


def _token_lists() -> list[list[str]]:
    vocab = default_vocabulary()
    out = []
    for name in _names():
        raw = normalize.tokenize(normalize.apply_symbols(normalize.strip_noise(name, vocab), vocab))
        out += [raw, normalize.normalize_tokens(name, vocab)]
    return out


def test_indexed_phrase_matching_equals_joining_token_slices():
    from nhs_lookup import components

    vocab = default_vocabulary()
    maps = [
        vocab.modality_strong,
        vocab.modality_hints,
        vocab.techniques,
        vocab.actions,
        vocab.indications,
        vocab.phrases,
        *components._vocab_maps(vocab),
        *vocab.modality_phrases.values(),
    ]
    found = 0
    for tokens in _token_lists():
        for phrases in maps:
            for max_len in (1, 3, 4):
                hits = components._find_phrases(tokens, phrases, max_len)
                assert hits == _find_phrases_reference(tokens, phrases, max_len), (tokens, max_len)
                found += len(hits)
            modality = normalize.rewrite_exact(tokens, phrases)
            ref, pos = [], 0
            for start, end, value in _find_phrases_reference(tokens, phrases, 3):
                ref += [*tokens[pos:start], *value.split()]
                pos = end
            assert modality == ref + tokens[pos:]
    assert found > 1000


def test_an_equal_phrase_map_reuses_the_index_and_a_changed_one_does_not():
    a = {"left knee": "knee", "knee": "knee"}
    b = dict(a)
    assert normalize.phrase_index(a) is normalize.phrase_index(b)
    c = {**a, "right knee": "knee"}
    assert "right" in normalize.phrase_index(c) and "right" not in normalize.phrase_index(a)


def test_plural_laterality_equals_the_substring_search():
    from nhs_lookup import components

    vocab = default_vocabulary()
    implied = 0
    for raw in [*_token_lists(), ["sacro", "iliac", "joints"], ["tm", "joints"], ["knees"]]:
        text = f" {' '.join(raw)} "
        want = ("bilateral", True) if any(f" {p} " in text for p in vocab.plural_bilateral) else (None, False)
        assert components._laterality([], raw, vocab) == want, raw
        implied += want[1]
    assert implied >= 3


@pytest.mark.parametrize(
    "code", ["CT", "ct", "C.T.", "MR ", "us-", "XR1", "DX", "Nm", "ß", "é", "", "PET/CT", "ZZ"]
)
def test_modality_of_code_fast_path_equals_the_regex(code):
    vocab = default_vocabulary()
    want = vocab.ris_codes.get(re.sub(r"[^A-Z0-9]", "", code.upper())) if code else None
    assert vocab.modality_of_code(code) == want


def test_rewrite_phrases_with_a_re_extended_vocabulary_equals_a_fresh_index():
    base = default_vocabulary()
    one, two = base.extended({"zzq knee": "knee"}), base.extended({"zzq knee": "knee"})
    other = base.extended({"zzq": "hip"})
    tokens = ["us", "zzq", "knee", "and", "zzq"]
    assert (
        normalize.rewrite_phrases(tokens, one)
        == normalize.rewrite_phrases(tokens, two)
        == ["us", "knee", "and", "zzq"]
    )
    assert normalize.rewrite_phrases(tokens, other) == ["us", "hip", "knee", "and", "hip"]


def test_typo_candidates_with_non_ascii_words_and_unseen_letters():
    lexicon = frozenset(
        ["oesophagus", "œsophagus", "façade", "naïve", "naive", "kidneys", "ab", "", "zzzzzq"]
    )
    for tok in [
        "oesophagas",
        "œsophagos",
        "facade",
        "naïvé",
        "naiive",
        "kidnyes",
        "qqqqq",
        "zzzzz",
        "éééééé",
    ]:
        for cutoff in (88.0, 60.0, 0.0):
            full = process.extractOne(tok, lexicon, scorer=fuzz.ratio, score_cutoff=cutoff)
            fast = process.extractOne(
                tok, typo_candidates(lexicon, tok, cutoff), scorer=fuzz.ratio, score_cutoff=cutoff
            )
            assert (full and full[:2]) == (fast and fast[:2]), (tok, cutoff)
