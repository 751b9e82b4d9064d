import pytest

from nhs_lookup.components import non_clinical_reason, parse, parse_name


@pytest.mark.parametrize(
    ("name", "code", "modality"),
    [
        ("US Breast Guided Aspiration Left", "Mamm", "US"),  # text beats the RIS code
        ("Knee Left", "XR", "XR"),  # code used when the text says nothing
        ("MRA Circle of Willis", None, "MRI"),
        ("3D Tomo Breast Screening Left", "Mamm", "MG"),
        ("XR Screening mammogram Both", None, "MG"),
        ("NM PSMA PET CT", None, "PET"),
        ("Barium Swallow", None, "FL"),
        ("Screen Wrist R", "FL", "FL"),
        ("DEXA Hip and Spine", None, "DEXA"),
        ("CT Guided Biopsy Lung", "IR", "CT"),
        ("Lower limb angiogram Right", "IR", "IR"),
        ("II Left Hip", "Other", "FL"),
        ("POCUS Gallbladder", "Other", "US"),
    ],
)
def test_modality(name, code, modality):
    assert parse(name, code).modality == modality


@pytest.mark.parametrize(
    ("name", "anatomy"),
    [
        ("CT Chest/Abdo/Pelvis", {"chest", "abdomen", "pelvis"}),
        ("XR Calcaneum Right", {"calcaneus"}),
        ("CT Tib/Fib Left", {"lower leg"}),
        ("MRI C-Spine", {"cervical spine"}),
        ("US KUB", {"urinary tract"}),
        ("Mammogram Bilateral", {"breast"}),
    ],
)
def test_anatomy(name, anatomy):
    assert set(parse(name).anatomy) == anatomy


@pytest.mark.parametrize(
    ("name", "laterality"),
    [
        ("XR Thumb Lt", "left"),
        ("Index Finger R", "right"),
        ("Both Knees", "bilateral"),
        ("Shoulder Left and Right", "bilateral"),
        ("XR Feet", "bilateral"),  # plural of a paired part
        ("CT Chest", None),
    ],
)
def test_laterality(name, laterality):
    assert parse(name).laterality == laterality


def test_plural_bilateral_is_marked_as_implied():
    assert parse_name("XR Ankles").bilateral_implied
    assert not parse_name("XR Ankle Both").bilateral_implied


@pytest.mark.parametrize(
    ("name", "contrast"),
    [
        ("CT Neck C+", "with"),
        ("CT Sinus C-", "without"),
        ("MRI Brain pre and post contrast", "with_and_without"),
        ("MRI Liver Primovist", "with"),
        ("CT Abdomen non-contrast", "without"),
        ("CT Abdomen and pelvis oral contrast only", "oral"),
        ("CT Head", None),
    ],
)
def test_contrast(name, contrast):
    assert parse(name).contrast == contrast


def test_technique_and_interventional():
    c = parse("US Doppler Carotids")
    assert "doppler" in c.technique and not c.interventional
    assert "angiography" in parse("CTPA").technique
    assert "hrct" in parse("HRCT Chest").technique
    assert parse("US Guided Breast Core Bx Left").interventional
    assert parse("Nephrostomy Tube Change").interventional
    assert not parse("MRI Knee Right").interventional


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Patient Did Not Arrive", "did_not_attend"),
        ("US DNA", "did_not_attend"),
        ("PET Declined", "declined"),
        ("EXAM CANCELLED - created in error", "cancelled"),
        ("CT Cardiac Reformats", "post_processing"),
        ("Film Import", "film_import"),
        ("XR Hand Left", None),
    ],
)
def test_non_clinical(name, reason):
    assert non_clinical_reason(name) == reason
