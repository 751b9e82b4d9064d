"""Default file locations: the shared reference data beside the repository, bundled samples."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SAMPLE_CASES = PACKAGE_DIR / "data" / "sample_cases.json"
DEFAULT_TRAINING_DB = "training_sessions.db"
DEFAULT_OPTIMIZATION_DB = "optimization_results.db"
DEFAULT_OPTIMIZED_CONFIG = "optimized_config.yaml"
LOG_DIR = Path("logs") / "training"


def shared_nhs_dirs() -> list[Path]:
    """Where ``../shared/nhs`` may be: beside the working directory, or beside the repository."""
    candidates = [Path.cwd().parent / "shared" / "nhs", PACKAGE_DIR.parents[2] / "shared" / "nhs"]
    seen: list[Path] = []
    for c in candidates:
        if c not in seen:
            seen.append(c)
    return seen


def shared_file(name: str) -> Path | None:
    for d in shared_nhs_dirs():
        if (d / name).is_file():
            return d / name
    return None


def default_cases(preferred: str) -> tuple[Path, str]:
    """``../shared/nhs/<preferred>`` when present, else the bundled sample cases; with a note saying which."""
    found = shared_file(preferred)
    if found is not None:
        return found, f"default dataset {found} (shared reference data)"
    return (
        SAMPLE_CASES,
        f"default dataset {SAMPLE_CASES} (bundled sample; ../shared/nhs/{preferred} not found)",
    )


def sqlalchemy_url(db: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (SQLite)."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser()}"
