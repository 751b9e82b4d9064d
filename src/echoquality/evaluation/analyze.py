"""Summarise an inference run (``echoquality analyze``): pass rates, score spread, skips.

The candidate counts are a dry run of ``prepare-data``: the same ``prepare.select`` call.
``summarise`` is pure; ``write_plots`` and the JSON writing are the I/O edges.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.provenance import package_versions
from echoquality.results_table import ResultRecord
from echoquality.training.selection import SelectionCriteria, select

# The fixed score bands of the quality model (lower bound, label); see scoring.assessment_for.
BANDS: tuple[tuple[float, str], ...] = (
    (0.8, "excellent"),
    (0.6, "good"),
    (0.3, "acceptable"),
    (0.2, "poor"),
    (0.1, "very_poor"),
    (float("-inf"), "critical"),
)
QUANTILES: tuple[tuple[str, float], ...] = (
    ("min", 0.0),
    ("p05", 0.05),
    ("p25", 0.25),
    ("median", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("max", 1.0),
)


def band_of(score: float) -> str:
    for lower, name in BANDS:
        if score >= lower:
            return name
    return "critical"


@dataclass
class GroupStats:
    """Counts for one machine type or folder (or everything)."""

    files: int = 0
    scored: int = 0
    skipped: int = 0
    pass_count: int = 0
    fail_count: int = 0
    pass_rate: float | None = None  # percent of scored files, like the original summary.json
    mean_score: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    bands: dict[str, int] = field(default_factory=dict)


@dataclass
class Analysis:
    source: str
    overall: GroupStats
    by_machine_type: dict[str, GroupStats]
    by_folder: dict[str, GroupStats]
    skip_reasons: dict[str, int]
    criteria: dict[str, float | int]
    candidates: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["versions"] = package_versions()
        return d


def group_stats(records: list[ResultRecord]) -> GroupStats:
    scores = np.array([r.score for r in records if r.score is not None], dtype=float)
    passes = sum(1 for r in records if r.score is not None and (r.status or "").upper() == "PASS")
    g = GroupStats(files=len(records), scored=int(scores.size), skipped=len(records) - int(scores.size))
    g.pass_count = passes
    g.fail_count = g.scored - passes
    g.bands = {name: 0 for _, name in BANDS}
    if scores.size:
        g.pass_rate = 100.0 * passes / scores.size
        g.mean_score = float(scores.mean())
        g.quantiles = {name: float(np.quantile(scores, q)) for name, q in QUANTILES}
        for s in scores:
            g.bands[band_of(float(s))] += 1
    return g


def summarise(records: list[ResultRecord], criteria: SelectionCriteria, source: str = "") -> Analysis:
    """All numbers ``analyze`` reports, from the flat records."""
    by_machine: dict[str, list[ResultRecord]] = {}
    by_folder: dict[str, list[ResultRecord]] = {}
    for r in records:
        by_machine.setdefault(r.machine_type, []).append(r)
        by_folder.setdefault(r.folder, []).append(r)
    sel = select(records, criteria)
    candidates = {
        "hq_candidates": sel.hq_candidates,
        "lq_candidates": sel.lq_candidates,
        "hq_selected": len(sel.high),
        "lq_selected": len(sel.low),
        "excluded": sel.excluded,
        "hq_selected_by_machine_type": dict(sorted(Counter(r.machine_type for r in sel.high).items())),
        "lq_selected_by_machine_type": dict(sorted(Counter(r.machine_type for r in sel.low).items())),
    }
    return Analysis(
        source=source,
        overall=group_stats(records),
        by_machine_type={k: group_stats(v) for k, v in sorted(by_machine.items())},
        by_folder={k: group_stats(v) for k, v in sorted(by_folder.items())},
        skip_reasons=dict(sorted(Counter(r.skip_reason for r in records if r.score is None).items())),
        criteria=asdict(criteria),
        candidates=candidates,
    )


def write_analysis(analysis: Analysis, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "analysis.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(analysis.to_dict(), indent=2))
    tmp.replace(path)
    return path


def _save_figure(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(
    records: list[ResultRecord], analysis: Analysis, output_dir: Path, threshold: float
) -> list[Path]:
    """Score distribution per machine type and pass rate per folder (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = np.linspace(0, 1, 21)
    machines = sorted({r.machine_type for r in records if r.score is not None})
    data = [[r.score for r in records if r.score is not None and r.machine_type == m] for m in machines]
    if data:
        ax.hist(data, bins=bins, label=machines, stacked=True)
    ax.axvline(threshold, color="red", linestyle="--", label=f"PASS threshold {threshold:g}")
    ax.legend(title="machine type", fontsize=8)
    ax.set_xlabel("quality score")
    ax.set_ylabel("files")
    ax.set_title("Score distribution per machine type")
    paths.append(_save_figure(plt, fig, output_dir / "analysis_score_by_machine.png"))

    folders = [f for f, g in analysis.by_folder.items() if g.pass_rate is not None]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.3 * len(folders) + 1)))
    ax.barh(folders, [analysis.by_folder[f].pass_rate for f in folders], color="#4CAF50")
    ax.set_xlim(0, 100)
    ax.set_xlabel("pass rate (%)")
    ax.set_title("Pass rate per folder")
    paths.append(_save_figure(plt, fig, output_dir / "analysis_pass_rate_by_folder.png"))
    return paths
