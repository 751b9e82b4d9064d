"""Shared fixtures for the lookup-engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def engine_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nhs_lookup_cache")


@pytest.fixture(scope="session")
def sample_engine(engine_cache_dir):
    """Engine on the bundled hand-written sample catalogue (no ../shared needed)."""
    from nhs_lookup.config import LookupConfig
    from nhs_lookup.engine import LookupEngine

    return LookupEngine.load(LookupConfig(cache_dir=str(engine_cache_dir)))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "nhs" / "NHS.json").is_file():
        pytest.skip(f"../shared/nhs data not present at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def nhs_engine(shared_dir, engine_cache_dir):
    """Engine on the real NHS catalogue from ../shared (skips when absent)."""
    from nhs_lookup.config import LookupConfig
    from nhs_lookup.engine import LookupEngine

    return LookupEngine.load(LookupConfig(cache_dir=str(engine_cache_dir)), shared_dir / "nhs" / "NHS.json")
