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


# --- second accuracy pass: context rules -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("CT Lymphoma Restaging", "CT", {"chest", "abdomen", "pelvis"}),  # staging CT = CAP
        ("CT Metastatic Carcinoma Staging C+", "CT", {"chest", "abdomen", "pelvis"}),
        ("CT Neck Lymphoma", "CT", {"neck"}),  # a stated region is kept
        ("CT Oncology Planning", "CT", set()),  # radiotherapy planning is not staging
        ("MRI Melanoma", "MR", set()),  # the staging default is for CT only
        ("US Guided Sentinel Node Injection Left", "Mamm", {"sentinel node", "breast"}),  # breast service
        ("US Sentinel Node Injection Left", "NM", {"sentinel node"}),
        ("US Axilla Left", "Mamm", {"axilla"}),  # a named part is not overridden
        ("Bone Age Study", "XR", {"bone", "hand", "wrist"}),  # bone age = hand and wrist
        ("XR Elbow Bone Age", "XR", {"bone", "elbow"}),
    ],
)
def test_implied_anatomy(name, code, expected):
    assert set(parse(name, code).anatomy) == expected


def test_breast_service_rule_leaves_mammograms_alone():
    p = parse_name("Mamm Diagnostic Left", "Mamm")
    assert p.components.anatomy == ("breast",)
    assert "breast" not in p.tokens  # MG implies breast without adding a content word


@pytest.mark.parametrize(
    ("name", "has_ta"),
    [
        ("US Pelvis Female & TV", True),
        ("US Pelvis TA/TV", True),
        ("US Pelvis Transabdominal and Transvaginal", True),
        ("US Pelvis TV Only", False),
        ("US Pelvis Extended TV & Renal", False),
        ("US Obstetric & TV", False),  # the TA+TV pelvis rule needs a pelvis
    ],
)
def test_pelvis_and_tv_means_transabdominal_plus_transvaginal(name, has_ta):
    tokens = parse_name(name, "US").tokens
    assert "tv" in tokens
    assert ("ta" in tokens) is has_ta


def test_sentinel_node_is_interventional_neutral():
    assert parse_name("NM Sentinel Node Breast Right", "NM").interventional_neutral
    assert parse_name("NM Lymphoscintigraphy Lower Limb", "NM").interventional_neutral
    assert not parse_name("US Guided Biopsy Axilla", "US").interventional_neutral


@pytest.mark.parametrize(
    ("name", "code"),
    [("US Leg Veins Right", "US"), ("US Carotid Arteries", "US"), ("US Arm Vein L", "US")],
)
def test_ultrasound_of_vessels_is_doppler(name, code):
    assert "doppler" in parse(name, code).technique


def test_ct_of_vessels_is_not_doppler():
    assert "doppler" not in parse("CT Aorta C+", "CT").technique


def test_image_intensifier_is_modality_not_content():
    p = parse_name("II Right Hand", "Other")
    assert p.components.modality == "FL"
    assert p.content == frozenset({"hand"})


def test_multiword_anatomy_is_one_content_concept():
    assert parse_name("Mobile image intensifier upper limb Rt").content == frozenset({"upper_limb"})


@pytest.mark.parametrize(
    ("name", "code", "modality"),
    [
        ("Mamm US Breast Right", "US", "US"),  # breast-service word + US: the RIS code decides
        ("Mamm US Breast Right", "Mamm", "MG"),
        ("PSMA Scan", "PET", "PET"),
        ("Tc99m PSMA SPECT", "NM", "NM"),  # a stated SPECT keeps it NM
    ],
)
def test_modality_tie_breaks(name, code, modality):
    assert parse(name, code).modality == modality


def test_pet_booking_is_pet_ct_but_catalogue_rows_are_literal():
    assert "ct" in parse_name("PET Scan Private Provider", "PET").tokens
    assert "ct" not in parse_name("NM Whole body PET FDG", None, catalogue_row=True).tokens
    assert "mri" in parse_name("PET MRI Liver", "PET").tokens
    assert "ct" not in parse_name("PET MRI Liver", "PET").tokens


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("DXA", "bone densitometry dexa"),
        ("Bone Density Scan", "bone densitometry dexa"),
        ("NM VQ", "ventilation perfusion"),
        ("MR TM Joints", "temporomandibular joint"),
        ("CT Tib & Fib Left", "lower leg"),
        ("Ba Swallow", "barium swallow"),
        ("Modified Ba Swallow", "video swallow"),
        ("CT Urography", "urogram"),
        ("XR Shunt Series", "cerebro spinal fluid shunt"),
        ("US Bypass Graft Surveillance", "graft surveillance doppler"),
    ],
)
def test_new_abbreviations(name, phrase):
    assert phrase in parse(name).clean_text


@pytest.mark.parametrize(
    "name",
    [
        "US Unable to contact patient",
        "CT Unprocessed Order",
        "US - No Imaging performed",
        "Referred under wrong urgency category",
    ],
)
def test_more_administrative_entries(name):
    assert non_clinical_reason(name) == "administrative"
