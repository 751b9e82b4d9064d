from nhs_lookup.normalize import normalize, normalize_tokens


def test_contrast_shorthand_and_abbreviations():
    assert normalize("CT Abdo/Pelvis C+") == "ct abdomen and pelvis with contrast"
    assert normalize("CT HEAD C-") == "ct head without contrast"
    assert "with and without contrast" in normalize("MRI Pituitary C+/-")
    assert normalize("MR L-Spine") == "mri lumbar spine"


def test_admin_noise_and_caret_codes_removed():
    assert normalize("ZXYUSB12^US Thyroid") == "us thyroid"
    assert normalize("Knee Left (Mobile) - NO REPORT") == "knee left"
    assert normalize("(V) US Carotid Doppler") == "us carotid doppler"


def test_laterality_markers_in_brackets_kept():
    assert normalize("Wrist (L)") == "wrist left"
    assert normalize("Elbow Rt") == "elbow right"
    assert normalize("Bilat Hips").startswith("bilateral")


def test_ordinals_and_symbols():
    assert "third trimester" in normalize("US Obs 3rd Trimester")
    assert normalize("Tib/Fib R") == "lower leg right"
    assert "ventilation perfusion" in normalize("NM V/Q scan")


def test_typo_correction_uses_lexicon_with_strict_cutoff():
    lex = {"abdomen", "pelvis", "shoulder"}
    assert normalize_tokens("US Shoulderr", lexicon=lex) == ["us", "shoulder"]
    # short or very different tokens are left alone
    assert normalize_tokens("US Shin", lexicon=lex) == ["us", "shin"]
