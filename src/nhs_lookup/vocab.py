"""Load the vocabulary data files (``nhs_lookup/data/*.yaml``) into one typed, cached object.

Everything the parser knows about radiology wording lives in those YAML files, not in code, so a
coder can extend it. :func:`vocab_fingerprint` hashes the files so caches built from them are
invalidated when they change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
VOCAB_FILES = (
    "abbreviations.yaml",
    "anatomy.yaml",
    "modalities.yaml",
    "noise.yaml",
    "non_clinical.yaml",
    "techniques.yaml",
    "actions.yaml",
    "derived_abbreviations.yaml",
    "indications.yaml",
)


_NOT_CODE = re.compile(r"[^A-Z0-9]")


class VocabularyError(ValueError):
    """A vocabulary file is missing or malformed."""


@dataclass(frozen=True)
class AnatomyTerm:
    name: str
    parent: str | None = None
    paired: bool = False


@dataclass(frozen=True)
class ImpliedAnatomy:
    """Anatomy implied by context when a name states none (``anatomy.yaml`` ``implied``)."""

    name: str
    anatomy: str  # canonical phrase appended to the name
    modalities: frozenset[str] = frozenset()  # parsed modality must be one of these (empty: any)
    words: frozenset[str] = frozenset()  # one of these tokens must be present (empty: no condition)
    ris_codes: frozenset[str] = frozenset()  # canonical modality of the RIS code (empty: any)
    only_with: frozenset[str] = frozenset()  # anatomy the name may already state (default: none)
    skip_modalities: frozenset[str] = frozenset()  # parsed modalities the rule never applies to
    unless: frozenset[str] = frozenset()  # tokens that cancel the rule


@dataclass
class Vocabulary:
    """Parsed vocabulary files (see the YAML files for the meaning of each part)."""

    symbols: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    phrases: dict[str, str] = field(default_factory=dict)  # token phrase -> canonical phrase
    anatomy: dict[str, AnatomyTerm] = field(default_factory=dict)
    plural_bilateral: frozenset[str] = frozenset()
    modality_strong: dict[str, str] = field(default_factory=dict)  # phrase -> modality
    modality_hints: dict[str, str] = field(default_factory=dict)
    modality_precedence: tuple[str, ...] = ()
    ris_codes: dict[str, str] = field(default_factory=dict)
    modality_similarity: dict[tuple[str, str], float] = field(default_factory=dict)
    noise: list[re.Pattern[str]] = field(default_factory=list)
    context_words: frozenset[str] = frozenset()
    context_groups: dict[str, frozenset[str]] = field(default_factory=dict)
    non_clinical: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    unspecific_words: frozenset[str] = frozenset()
    generic_words: frozenset[str] = frozenset()  # "miscellaneous"-type words (no part, no action)
    time_billed: re.Pattern[str] | None = None  # a duration where the body part should be
    non_clinical_any: re.Pattern[str] | None = None  # all non-clinical patterns in one (pre-filter)
    techniques: dict[str, str] = field(default_factory=dict)  # phrase -> technique tag
    interventional: frozenset[str] = frozenset()
    interventional_neutral: frozenset[str] = frozenset()  # studies with intrinsic injection
    implied_anatomy: tuple[ImpliedAnatomy, ...] = ()
    doppler_modalities: frozenset[str] = frozenset()  # vessel imaging by these modalities is Doppler
    doppler_anatomy: frozenset[str] = frozenset()
    actions: dict[str, str] = field(default_factory=dict)  # phrase -> canonical action
    exclusive_actions: frozenset[str] = frozenset()  # actions that exclude each other
    indications: dict[str, str] = field(default_factory=dict)  # clinical indication -> anatomy term
    modality_phrases: dict[str, dict[str, str]] = field(default_factory=dict)  # modality -> rewrites
    fingerprint: str = ""

    def ancestors(self, term: str) -> list[str]:
        """The term followed by its parents up to the root."""
        out = [term]
        seen = {term}
        node = self.anatomy.get(term)
        while node is not None and node.parent and node.parent not in seen:
            out.append(node.parent)
            seen.add(node.parent)
            node = self.anatomy.get(node.parent)
        return out

    def extended(self, phrases: Mapping[str, str]) -> Vocabulary:
        """A copy with extra phrase rewrites (e.g. a site's learned shorthand: token -> catalogue term).

        Extra entries never override the bundled ones; the fingerprint changes with them."""
        extra = {}
        for key, value in phrases.items():
            k, v = _norm_phrase(key), _norm_phrase(value)
            if k and v and k not in self.phrases:
                extra[k] = v
        if not extra:
            return self
        h = hashlib.sha256(self.fingerprint.encode())
        for k in sorted(extra):
            h.update(f"{k}\t{extra[k]}\n".encode())
        return replace(self, phrases={**self.phrases, **extra}, fingerprint=h.hexdigest()[:16])

    def modality_of_code(self, code: str | None) -> str | None:
        if not code:
            return None
        key = code.upper()
        if not (key.isascii() and key.isalnum()):  # already only A-Z0-9: nothing to remove
            key = _NOT_CODE.sub("", key)
        return self.ris_codes.get(key)

    def canonical_modality(self, name: str) -> str | None:
        """Map a free modality name ("MR", "Mammogram", "X-ray") to the canonical code."""
        key = name.strip().lower()
        if key.upper() in self.modality_precedence:
            return key.upper()
        by_code = self.modality_of_code(name)
        if by_code:
            return by_code
        key = re.sub(r"[^a-z0-9]+", " ", key).strip()
        return self.modality_strong.get(key) or self.modality_hints.get(key)


# libyaml's safe loader when built in (same result, several times faster: start-up of a lookup).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(name: str, data_dir: Path) -> dict:
    path = data_dir / name
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except OSError as exc:
        raise VocabularyError(f"vocabulary file {path} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise VocabularyError(f"vocabulary file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise VocabularyError(f"vocabulary file {path} must hold a mapping")
    return data


def _norm_phrase(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def vocab_fingerprint(data_dir: Path = DATA_DIR) -> str:
    h = hashlib.sha256()
    for name in VOCAB_FILES:
        h.update(name.encode())
        h.update((data_dir / name).read_bytes())
    return h.hexdigest()[:16]


def load_vocabulary(data_dir: Path = DATA_DIR, *, derived: bool = True) -> Vocabulary:
    """Read and validate all vocabulary files from *data_dir* (``derived=False``: without the
    generated ``derived_abbreviations.yaml``, as ``tools/derive_vocab.py`` needs)."""
    v = Vocabulary(fingerprint=vocab_fingerprint(data_dir))
    _load_abbreviations(v, _read("abbreviations.yaml", data_dir))
    _load_anatomy(v, _read("anatomy.yaml", data_dir))
    _load_modalities(v, _read("modalities.yaml", data_dir))
    _load_noise(v, _read("noise.yaml", data_dir), _read("non_clinical.yaml", data_dir))
    _load_techniques(v, _read("techniques.yaml", data_dir))
    _load_actions(v, _read("actions.yaml", data_dir))
    _load_indications(v, _read("indications.yaml", data_dir))
    if derived:
        for key, value in (_read("derived_abbreviations.yaml", data_dir).get("phrases") or {}).items():
            v.phrases.setdefault(_norm_phrase(key), _norm_phrase(value))  # hand-written entries win
    return v


def _load_abbreviations(v: Vocabulary, abbr: dict) -> None:
    for i, item in enumerate(abbr.get("symbols") or [], start=1):
        if not (isinstance(item, list) and len(item) == 2):
            raise VocabularyError(f"abbreviations.yaml symbols item {i}: expected [pattern, replacement]")
        try:
            v.symbols.append((re.compile(item[0]), str(item[1])))
        except re.error as exc:
            raise VocabularyError(f"abbreviations.yaml symbols item {i}: bad pattern: {exc}") from exc
    for key, value in (abbr.get("phrases") or {}).items():
        v.phrases[_norm_phrase(key)] = _norm_phrase(value)


def _load_anatomy(v: Vocabulary, anat: dict) -> None:
    for name, spec in (anat.get("terms") or {}).items():
        spec = spec or {}
        term = _norm_phrase(name)
        v.anatomy[term] = AnatomyTerm(
            term,
            _norm_phrase(spec["parent"]) if spec.get("parent") else None,
            bool(spec.get("paired", False)),
        )
        for syn in spec.get("synonyms") or []:
            v.phrases.setdefault(_norm_phrase(syn), term)
    for term in v.anatomy.values():
        if term.parent and term.parent not in v.anatomy:
            raise VocabularyError(f"anatomy.yaml: parent '{term.parent}' of '{term.name}' is not a term")
    v.plural_bilateral = frozenset(_norm_phrase(p) for p in anat.get("plural_bilateral") or [])
    implied = []
    for rule, spec in (anat.get("implied") or {}).items():
        if not isinstance(spec, dict) or not spec.get("anatomy"):
            raise VocabularyError(f"anatomy.yaml implied.{rule}: expected a mapping with 'anatomy'")
        implied.append(
            ImpliedAnatomy(
                name=str(rule),
                anatomy=_norm_phrase(spec["anatomy"]),
                modalities=frozenset(str(m) for m in spec.get("modalities") or []),
                words=frozenset(_norm_phrase(w) for w in spec.get("words") or []),
                ris_codes=frozenset(str(m) for m in spec.get("ris_codes") or []),
                only_with=frozenset(_norm_phrase(a) for a in spec.get("only_with") or []),
                skip_modalities=frozenset(str(m) for m in spec.get("skip_modalities") or []),
                unless=frozenset(_norm_phrase(w) for w in spec.get("unless") or []),
            )
        )
    v.implied_anatomy = tuple(implied)


def _load_modalities(v: Vocabulary, mods: dict) -> None:
    for code, spec in (mods.get("modalities") or {}).items():
        for p in spec.get("strong") or []:
            v.modality_strong[_norm_phrase(p)] = code
        for p in spec.get("hints") or []:
            v.modality_hints[_norm_phrase(p)] = code
    v.modality_precedence = tuple(mods.get("precedence") or ())
    v.ris_codes = {str(k).upper(): str(val) for k, val in (mods.get("ris_codes") or {}).items()}
    for pair, value in (mods.get("similarity") or {}).items():
        a, b = str(pair).split("-")
        v.modality_similarity[(a, b)] = v.modality_similarity[(b, a)] = float(value)


def _load_noise(v: Vocabulary, noise: dict, nc: dict) -> None:
    v.noise = [re.compile(p) for p in noise.get("patterns") or []]
    v.context_words = frozenset(_norm_phrase(w) for w in noise.get("context_words") or [])
    v.context_groups = {g: frozenset(ws) for g, ws in (noise.get("context_groups") or {}).items()}
    for reason, patterns in (nc.get("patterns") or {}).items():
        for p in patterns:
            v.non_clinical.append((reason, re.compile(p)))
    if v.non_clinical:
        v.non_clinical_any = re.compile("|".join(f"(?:{p.pattern})" for _, p in v.non_clinical))
    v.unspecific_words = frozenset(nc.get("unspecific_words") or [])
    v.generic_words = frozenset(nc.get("generic_words") or [])
    v.time_billed = re.compile(nc["time_billed"]) if nc.get("time_billed") else None


def _load_techniques(v: Vocabulary, tech: dict) -> None:
    for tag, phrases in (tech.get("techniques") or {}).items():
        for p in phrases:
            v.techniques[_norm_phrase(p)] = tag
    interventional = tech.get("interventional") or {}
    v.interventional = frozenset(_norm_phrase(t) for t in interventional.get("strong") or [])
    v.interventional_neutral = frozenset(_norm_phrase(t) for t in interventional.get("neutral") or [])
    dop = tech.get("implied_doppler") or {}
    v.doppler_modalities = frozenset(str(m) for m in dop.get("modalities") or [])
    v.doppler_anatomy = frozenset(_norm_phrase(a) for a in dop.get("anatomy") or [])


def _load_actions(v: Vocabulary, act: dict) -> None:
    for action, phrases in (act.get("actions") or {}).items():
        if not isinstance(phrases, list):
            raise VocabularyError(f"actions.yaml actions.{action}: expected a list of phrases")
        for p in phrases:
            v.actions.setdefault(_norm_phrase(p), _norm_phrase(action))
    v.exclusive_actions = frozenset(_norm_phrase(a) for a in act.get("exclusive") or [])


def _load_indications(v: Vocabulary, data: dict) -> None:
    """``indications.yaml``: clinical indication -> anatomy, and modality-conditioned abbreviations."""
    for phrase, anatomy in (data.get("indications") or {}).items():
        anat = _norm_phrase(anatomy)
        if anat not in v.anatomy:
            raise VocabularyError(f"indications.yaml: '{phrase}' -> '{anatomy}' is not an anatomy term")
        v.indications[_norm_phrase(phrase)] = anat
    for modality, phrases in (data.get("modality_abbreviations") or {}).items():
        if not isinstance(phrases, dict):
            raise VocabularyError(f"indications.yaml modality_abbreviations.{modality}: expected a mapping")
        v.modality_phrases[str(modality)] = {_norm_phrase(k): _norm_phrase(x) for k, x in phrases.items()}


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The bundled vocabulary, loaded once per process."""
    return load_vocabulary()
