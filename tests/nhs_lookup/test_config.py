"""Lookup configuration: defaults in code, YAML overrides, the seed's layout, clear errors."""

from __future__ import annotations

import pytest

from nhs_lookup.config import LookupConfig, load_config, save_config


def test_defaults_match_the_seed():
    s = LookupConfig().scoring
    assert s.retriever_top_k == 25
    assert (s.weights_component.anatomy, s.weights_component.modality) == (0.35, 0.25)
    assert (s.weights_final.component, s.weights_final.semantic, s.weights_final.frequency) == (
        0.55,
        0.35,
        0.10,
    )
    assert (s.interventional_bonus, s.interventional_penalty) == (0.15, -0.20)
    assert (s.contrast_mismatch_score, s.contrast_null_score) == (0.3, 0.7)
    assert s.modality_similarity["CT"]["HRCT"] == 0.9


def test_seed_layout_yaml_loads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "scoring:\n  retriever_top_k: 15\n  weights_component: {anatomy: 0.4}\n"
        "  modality_similarity_threshold: 0.8\n"
        "modality_similarity:\n  CT: {CECT: 0.5}\n"
        "preprocessing:\n  medical_abbreviations: {C+: with contrast}\n"
    )
    cfg = load_config(path)
    assert cfg.scoring.retriever_top_k == 15
    assert cfg.scoring.weights_component.anatomy == 0.4
    assert cfg.scoring.weights_component.modality == 0.25  # untouched keys keep defaults
    assert cfg.scoring.modality_similarity == {"CT": {"CECT": 0.5}}


def test_round_trip(tmp_path):
    cfg = LookupConfig()
    cfg.scoring.exact_match_bonus = 0.3
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_unknown_key_and_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  weights_component: {anatomyy: 0.4}\n")
    with pytest.raises(ValueError, match="anatomyy"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("scoring: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
