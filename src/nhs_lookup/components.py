"""Component extraction: modality, anatomy, laterality, contrast, technique, interventional intent and
non-clinical status, from a normalised exam name (the same parser runs on catalogue rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from nhs_lookup.normalize import normalize_tokens, phrase_index, strip_noise, tokenize
from nhs_lookup.records import Components
from nhs_lookup.vocab import Vocabulary, default_vocabulary

# Modality words that also name a distinct procedure (SPECT vs planar, tomosynthesis vs 2D mammogram,
# HRCT vs CT chest): they stay identity-bearing so a row adding one is "more specific" than the name.
PROCEDURE_MODALITY_WORDS = frozenset({"spect", "tomosynthesis", "hrct", "fdg"})  # fdg: the PET tracer
LEADING_MODALITIES = frozenset({"CT", "MRI", "US"})
# Tokens that name only a modality (not a study such as "renogram" or "bone scan"): a name made of these
# alone ("CT", "MRI", "+++") has nothing to map beyond the modality.
GENERIC_MODALITY_TOKENS = frozenset(
    {
        "ct",
        "mri",
        "us",
        "xray",
        "xr",
        "nm",
        "fluoro",
        "fl",
        "rf",
        "pet",
        "ir",
        "xa",
        "interventional",
        "cr",
        "dr",
        "dx",
        "image",
        "intensifier",
        "hybridct",
        "scan",
        "imaging",
    }
)
# Anatomy implied by a modality when the name states none ("Bilateral Mammograms" is of the breasts).
IMPLIED_ANATOMY = {"MG": ("breast",), "PET": ("whole body",)}
# PET without a named tracer is, in clinical practice, FDG PET-CT.
PET_TRACERS = frozenset(
    {
        "fdg",
        "psma",
        "choline",
        "dotatate",
        "ga68",
        "f18",
        "18f",
        "fluciclovine",
        "methionine",
        "amyloid",
        "florbetaben",
        "flutemetamol",
        "rb81",
        "nh3",
        "c11",
        "fluoride",
        "dopa",
        "fet",
    }
)
# Actions that do not make a procedure interventional (a post-mortem CT is a diagnostic study).
NON_INTERVENTIONAL_ACTIONS = frozenset({"post mortem"})
LATERALITY_WORDS = {"left": "left", "right": "right", "bilateral": "bilateral"}
# Words that carry no procedure identity (for specificity and "unspecific" checks).
STRUCTURAL_WORDS = frozenset(
    {"with", "without", "and", "contrast", "left", "right", "bilateral", "of", "the", "for", "in", "a", "to"}
)


@dataclass(frozen=True)
class ParsedName:
    """Components plus parser details the scorer needs (kept out of the public record)."""

    components: Components
    tokens: tuple[str, ...]
    modality_source: str | None  # text | hint | code | None
    bilateral_implied: bool  # laterality came from a plural ("Knees"), not a stated side
    context: frozenset[str]  # clinical-context groups present (screening, pregnancy, ...)
    content: frozenset[str]  # identity-bearing tokens (no modality/laterality/contrast/context words)
    unspecific: bool = False  # only modality / "miscellaneous"-type words: nothing to map
    interventional_neutral: bool = False  # names a study whose protocol includes an injection
    actions: frozenset[str] = frozenset()  # procedure actions stated (insert, remove, biopsy, ...)
    modality_only: bool = False  # states nothing beyond a modality (or nothing at all)


def _find_phrases(tokens: list[str], phrases: dict[str, str], max_len: int = 4) -> list[tuple[int, int, str]]:
    """Longest-first, non-overlapping phrase hits: (start, end, value)."""
    index = phrase_index(phrases)
    hits: list[tuple[int, int, str]] = []
    if index.keys().isdisjoint(tokens):  # no token starts a phrase (the common case)
        return hits
    i = 0
    n = len(tokens)
    while i < n:
        for k, words, value in index.get(tokens[i], ()):
            if k <= max_len and (k == 1 or tuple(tokens[i : i + k]) == words):
                hits.append((i, i + k, value))
                i += k
                break
        else:
            i += 1
    return hits


def _modality(
    tokens: list[str], vocab: Vocabulary, modality_code: str | None
) -> tuple[str | None, str | None]:
    hits = _find_phrases(tokens, vocab.modality_strong)
    strong = [v for _, _, v in hits]
    if strong:
        found = set(strong)
        # A leading cross-sectional/US modality names the study ("CT Bone densitometry", "US Guided ...").
        if hits[0][0] == 0 and hits[0][2] in LEADING_MODALITIES:
            return hits[0][2], "text"
        # "US guided ..." / "CT guided ...": the guidance modality wins over IR words.
        ranked = [m for m in vocab.modality_precedence if m in found]
        code = vocab.modality_of_code(modality_code)
        if {"MG", "US"} <= found and code in ("MG", "US"):
            # "Mamm US Breast": the breast-service word and ultrasound both stated; the RIS code decides.
            return code, "text"
        if "IR" in found and len(found) > 1:
            ranked = [m for m in ranked if m != "IR"]
        if "FL" in found and "XR" in found:
            ranked = [m for m in ranked if m != "XR"]
        return ranked[0], "text"
    hints = [v for _, _, v in _find_phrases(tokens, vocab.modality_hints)]
    if hints:
        code = vocab.modality_of_code(modality_code)
        if code in set(hints):
            return code, "text"  # the name's wording and the RIS code agree
        return hints[0], "hint"
    code = vocab.modality_of_code(modality_code)
    if code:
        return code, "code"
    return None, None


def _anatomy(tokens: list[str], vocab: Vocabulary) -> tuple[str, ...]:
    found = [v for _, _, v in _find_phrases(tokens, _vocab_maps(vocab)[2], max_len=4)]
    return tuple(sorted(set(found)))


def _laterality(tokens: list[str], raw_tokens: list[str], vocab: Vocabulary) -> tuple[str | None, bool]:
    sides = {LATERALITY_WORDS[t] for t in tokens if t in LATERALITY_WORDS}
    if "bilateral" in sides or {"left", "right"} <= sides:
        return "bilateral", False
    if sides:
        return sides.pop(), False
    words, phrases = _plural_shapes(vocab.plural_bilateral)
    if not words.isdisjoint(raw_tokens):  # a one-word plural is in " raw " iff it is a raw token
        return "bilateral", True
    if phrases:
        raw = f" {' '.join(raw_tokens)} "
        for plural in phrases:
            if f" {plural} " in raw:
                return "bilateral", True
    return None, False


# id(plural set) -> (the set, kept so its id is never reused; one-word plurals; the other plurals)
_PLURALS: dict[int, tuple[frozenset[str], frozenset[str], tuple[str, ...]]] = {}


def _plural_shapes(plurals: frozenset[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Plurals that are one whole token (a set test) and the rest (substring tests), once per set."""
    hit = _PLURALS.get(id(plurals))
    if hit is None or hit[0] is not plurals:
        single = frozenset(p for p in plurals if p and p.split() == [p])
        hit = _PLURALS[id(plurals)] = (plurals, single, tuple(p for p in plurals if p not in single))
    return hit[1], hit[2]


def _contrast(text: str) -> str | None:
    t = f" {text} "
    if " with and without contrast " in t:
        return "with_and_without"
    has_with = " with contrast " in t or " iv contrast " in t or " contrast with " in t
    has_without = " without contrast " in t
    if " oral contrast " in t and not has_with and " iv " not in t:
        return "oral"
    if has_with and has_without:
        return "with_and_without"
    if has_without:
        return "without"
    if has_with or t.rstrip().endswith(" contrast") and " contrast " in t and "without" not in t:
        return "with"
    return None


def _technique(tokens: list[str], vocab: Vocabulary) -> tuple[str, ...]:
    return tuple(sorted({v for _, _, v in _find_phrases(tokens, vocab.techniques)}))


def _concept_tokens(tokens: list[str], vocab: Vocabulary) -> list[str]:
    """Tokens with multi-word anatomy terms joined ("upper limb" -> "upper_limb"): one concept counts
    once in coverage and specificity, so "Upper limb" is not "more specific" than "Hip"."""
    hits = _find_phrases(tokens, _vocab_maps(vocab)[0], max_len=4)
    if not hits:
        return tokens
    out: list[str] = []
    pos = 0
    for start, end, value in hits:
        out.extend(tokens[pos:start])
        out.append(value)
        pos = end
    out.extend(tokens[pos:])
    return out


def _transabdominal(tokens: list[str]) -> list[str]:
    """ "Pelvis & TV": a transvaginal scan *in addition* to the standard transabdominal pelvic scan."""
    if "tv" not in tokens or "ta" in tokens or "pelvis" not in tokens:
        return tokens
    i = tokens.index("tv")
    if i > 0 and tokens[i - 1] == "and":
        return [*tokens[: i - 1], "ta", *tokens[i - 1 :]]
    return tokens


def _implied_anatomy(
    tokens: list[str],
    anatomy: tuple[str, ...],
    modality: str | None,
    code_modality: str | None,
    vocab: Vocabulary,
) -> str | None:
    """Anatomy implied by context (staging CT, breast-service code) when the name states none."""
    present = set(tokens)
    for rule in vocab.implied_anatomy:
        if rule.modalities and modality not in rule.modalities or modality in rule.skip_modalities:
            continue
        if rule.ris_codes and code_modality not in rule.ris_codes:
            continue
        if rule.words and not rule.words & present or rule.unless & present:
            continue
        if not set(anatomy) <= rule.only_with:
            continue
        if rule.anatomy in anatomy:
            continue
        return rule.anatomy
    return None


# Words that make a following action history, not the procedure ("post coiling", "previous stent").
HISTORY_WORDS = frozenset({"post", "after", "previous", "prior", "following", "known"})


def _actions(tokens: list[str], vocab: Vocabulary) -> frozenset[str]:
    """Procedure actions stated in the name; an action after a history word is context."""
    return frozenset(
        v
        for start, _, v in _find_phrases(tokens, vocab.actions, max_len=3)
        if start == 0 or tokens[start - 1] not in HISTORY_WORDS
    )


def first_modality(raw_tokens: list[str], vocab: Vocabulary, modality_code: str | None) -> str | None:
    """The modality a name is written in before any rewriting: its first modality word, else the
    RIS code (selects the modality-conditioned abbreviations)."""
    hits = _find_phrases(raw_tokens, vocab.modality_strong, max_len=3)
    return hits[0][2] if hits else vocab.modality_of_code(modality_code)


def _indicated_anatomy(tokens: list[str], anatomy: tuple[str, ...], vocab: Vocabulary) -> str | None:
    """Body part implied by a clinical indication ("stroke" -> head) when the name states none."""
    if anatomy or not vocab.indications:
        return None
    hits = _find_phrases(tokens, vocab.indications, max_len=4)
    return hits[0][2] if hits else None


_GESTATION = re.compile(
    r"(?P<op>>|<|over|under|greater than|less than)?\s*(?P<a>\d{1,2})\s*(?:(?:-|to)\s*(?P<b>\d{1,2}))?"
    r"\s*(?:\+\s*\d\s*)?(?:weeks?|wks?|wk)\b"
)


def _trimester(text: str, tokens: list[str]) -> list[str]:
    """Gestational age in weeks -> trimester words (first < 14, second 14-27, third >= 28 weeks)."""
    if not {"obstetric", "pregnancy", "fetal", "gestation"} & set(tokens):
        return []
    m = _GESTATION.search(text.lower())
    if m is None:
        return []
    a, b = int(m.group("a")), m.group("b")
    op = m.group("op") or ""
    # a range counts by its middle; "over N" is N + 1; "under N" spans 0..N, counted by its middle.
    weeks = (a + int(b)) / 2 if b else a + 1 if op in (">", "over", "greater than") else a / 2 if op else a
    word = "first" if weeks < 14 else "second" if weeks < 28 else "third"
    return [w for w in ("obstetric", word, "trimester") if w not in tokens or w == word]


def _interventional(tokens: list[str], vocab: Vocabulary) -> bool:
    return bool(_find_phrases(tokens, _vocab_maps(vocab)[3], max_len=3))


def _time_billed(text: str, anatomy: tuple[str, ...], vocab: Vocabulary) -> str | None:
    """ "II 30 mins", "Day Stay 2 hours": a duration and no body part is a time-billed session."""
    if anatomy or vocab.time_billed is None:
        return None
    return "time_billed" if vocab.time_billed.search(text.lower()) else None


def non_clinical_reason(text: str, vocab: Vocabulary | None = None) -> str | None:
    """Reason code when *text* is an administrative entry (did not attend, declined, ...)."""
    vocab = vocab or default_vocabulary()
    low = text.lower()
    if vocab.non_clinical_any is not None and not vocab.non_clinical_any.search(low):
        return None  # one combined search rules out most names
    for reason, pattern in vocab.non_clinical:
        if pattern.search(low):
            return reason
    return None


def parse_name(
    text: str,
    modality_code: str | None = None,
    vocab: Vocabulary | None = None,
    lexicon: frozenset[str] | None = None,
    *,
    catalogue_row: bool = False,
) -> ParsedName:
    """Parse an exam name (or, with ``catalogue_row``, a catalogue name or FSN) into :class:`ParsedName`.

    Catalogue rows define their procedure exactly, so booking-practice inferences (a RIS "PET" booking
    is a PET-CT) apply to exam names only."""
    vocab = vocab or default_vocabulary()
    stripped = strip_noise(text, vocab)
    raw_tokens = tokenize(stripped)
    mod_phrases = vocab.modality_phrases.get(first_modality(raw_tokens, vocab, modality_code) or "")
    tokens = _transabdominal(normalize_tokens(text, vocab, lexicon, mod_phrases, stripped=stripped))
    tokens = [*tokens, *_trimester(text, tokens)]
    modality, source = _modality(tokens, vocab, modality_code)
    if modality == "PET" and "pet" not in tokens:
        tokens = [*tokens, "pet"]  # "PSMA scan" booked as PET is a PET study
    if not catalogue_row and modality == "PET" and not {"ct", "mri"} & set(tokens):
        tokens = [*tokens, "ct", "hybridct"]  # stand-alone PET scanners are retired: a PET booking is PET-CT
    if modality == "PET" and not PET_TRACERS & set(tokens):
        tokens = [*tokens, "fdg"]
    anatomy = _anatomy(tokens, vocab)
    extra = _implied_anatomy(tokens, anatomy, modality, vocab.modality_of_code(modality_code), vocab)
    if not catalogue_row:  # a row's anatomy comes from its name and FSN, never from its purpose
        extra = extra or _indicated_anatomy(tokens, anatomy, vocab)
    if extra:
        tokens = [*tokens, *extra.split()]
        anatomy = _anatomy(tokens, vocab)
    if modality == "US" and "graft" in tokens and not {"stent", "stentgraft"} & set(tokens):
        # Ultrasound of a (bypass) graft is graft surveillance: a duplex Doppler study by definition.
        tokens = [*tokens, *(w for w in ("surveillance", "doppler") if w not in tokens)]
    if (
        modality in vocab.doppler_modalities
        and vocab.doppler_anatomy & set(anatomy)
        and "doppler" not in tokens
    ):
        tokens = [*tokens, "doppler"]
    laterality, implied = _laterality(tokens, raw_tokens, vocab)
    clean = " ".join(tokens)
    present = set(tokens)
    context = frozenset(g for g, words in vocab.context_groups.items() if not words.isdisjoint(present))
    modality_words = _modality_words(vocab)
    content = frozenset(
        t
        for t in _concept_tokens(tokens, vocab)
        if t not in STRUCTURAL_WORDS and t not in vocab.context_words and t not in modality_words
    )
    anatomy = anatomy or IMPLIED_ANATOMY.get(modality or "", ())
    actions = _actions(tokens, vocab)
    comps = Components(
        modality=modality,
        anatomy=anatomy,
        laterality=laterality,
        contrast=_contrast(clean),
        technique=_technique(tokens, vocab),
        interventional=_interventional(tokens, vocab) or bool(actions - NON_INTERVENTIONAL_ACTIONS),
        non_clinical=non_clinical_reason(text, vocab) or _time_billed(text, anatomy, vocab),
        clean_text=clean,
    )
    # Nothing left after noise removal ("Day Stay"), or only "miscellaneous"-type words: nothing to map.
    unspecific = (
        not content
        and not anatomy
        and not comps.technique
        and (not tokens or bool(vocab.unspecific_words & set(raw_tokens)))
    )
    # "POCUS ED Miscellaneous", "Screen Ortho": a generic-procedure word with no body part or action.
    unspecific = unspecific or (not anatomy and not actions and bool(vocab.generic_words & set(raw_tokens)))
    neutral = bool(_find_phrases(tokens, _vocab_maps(vocab)[1], max_len=3))
    modality_only = (
        not content
        and not anatomy
        and not comps.technique
        and not actions
        and all(
            t in GENERIC_MODALITY_TOKENS or t in STRUCTURAL_WORDS or t in vocab.context_words for t in tokens
        )
    )
    return ParsedName(
        comps, tuple(tokens), source, implied, context, content, unspecific, neutral, actions, modality_only
    )


_MOD_WORDS: dict[int, frozenset[str]] = {}
_MOD_KEEP: dict[int, dict[str, str]] = {}
_MAPS: dict[int, tuple[Vocabulary, tuple[dict[str, str], ...]]] = {}


def _vocab_maps(vocab: Vocabulary) -> tuple[dict[str, str], ...]:
    """Phrase maps built once per vocabulary: (multi-word anatomy -> joined concept token,
    interventional-neutral phrases, anatomy terms, interventional terms)."""
    hit = _MAPS.get(id(vocab))
    if hit is None or hit[0] is not vocab:
        if len(_MAPS) > 64:
            _MAPS.clear()
        joined = {t: t.replace(" ", "_") for t in vocab.anatomy if " " in t}
        maps = (
            joined,
            {t: t for t in vocab.interventional_neutral},
            {t: t for t in vocab.anatomy},
            {t: t for t in vocab.interventional},
        )
        hit = _MAPS[id(vocab)] = (vocab, maps)
    return hit[1]


def _modality_words(vocab: Vocabulary) -> frozenset[str]:
    key = id(vocab.modality_strong)
    hit = _MOD_KEEP.get(key)
    if hit is None or hit is not vocab.modality_strong:
        _MOD_KEEP[key] = vocab.modality_strong  # kept alive: its id is never reused while cached
        words: set[str] = set()
        for phrase in vocab.modality_strong:
            if len(phrase.split()) == 1 and phrase not in PROCEDURE_MODALITY_WORDS:
                words.add(phrase)
        words.update({"xray", "fluoro", "mri", "ct", "us", "nm"})
        # "II" / image intensifier is theatre fluoroscopy: the modality, not the procedure.
        words.update({"image", "intensifier"})

        _MOD_WORDS[key] = frozenset(words)
    return _MOD_WORDS[key]


@lru_cache(maxsize=65536)
def parse(text: str, modality_code: str | None = None) -> Components:
    """Components of *text* with the bundled vocabulary (cached)."""
    return parse_name(text, modality_code).components
