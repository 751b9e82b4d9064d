"""Training-report metrics computed from case outcomes (pure, via :mod:`nhs_lookup.metrics`), and their
Rich rendering."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nhs_lookup.metrics import BandStats, CaseOutcome, GroupStats, MetricsAccumulator, _r, group_stats


@dataclass
class TrainingReport:
    """The final report of a training session (stored in the session row and ``--report-json``)."""

    success_threshold: float
    overall: GroupStats = field(default_factory=GroupStats)
    confident: int = 0  # matched with confidence >= success_threshold
    no_matches: int = 0
    metrics: MetricsAccumulator = field(default_factory=MetricsAccumulator, repr=False)
    per_modality: dict[str, GroupStats] = field(default_factory=dict)
    per_source: dict[str, GroupStats] = field(default_factory=dict)
    per_split: dict[str, GroupStats] = field(default_factory=dict)
    file_errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed_s: float | None = None
    cases_per_second: float | None = None

    @property
    def bands(self) -> list[BandStats]:
        return self.metrics.band_table()

    @property
    def success_rate(self) -> float | None:
        return self.confident / self.overall.cases if self.overall.cases else None

    def add(self, o: CaseOutcome) -> None:
        self.overall.add(o)
        if o.matched and o.confidence >= self.success_threshold:
            self.confident += 1
        if not o.matched and o.error is None:
            self.no_matches += 1
        self.metrics.add(o)
        self.per_modality.setdefault(o.modality or "(unknown)", GroupStats()).add(o)
        self.per_source.setdefault(o.data_source or "(no source)", GroupStats()).add(o)
        self.per_split.setdefault(o.split, GroupStats()).add(o)
        if o.error is not None and len(self.error_examples) < 20:
            self.error_examples.append(f"case {o.case_index} ({o.exam_name!r}): {o.error}")

    def to_dict(self) -> dict[str, Any]:
        summary = self.metrics.result()
        return {
            "cases_processed": self.overall.cases,
            "labelled_cases": self.overall.labelled,
            "top1_accuracy": _r(self.overall.top1_accuracy),
            "top5_accuracy": _r(self.overall.top5_accuracy),
            "mrr": _r(self.overall.mrr),
            "success_threshold": self.success_threshold,
            "success_rate": _r(self.success_rate),
            "average_confidence": _r(self.overall.average_confidence),
            "no_matches": self.no_matches,
            "errors": self.overall.errors,
            "file_errors": self.file_errors,
            "error_examples": self.error_examples,
            "calibration": [b.to_dict() for b in self.bands],
            "ece": _r(summary.ece),
            "auto_accept_coverage": _r(summary.auto_accept_coverage),
            "no_match_precision": _r(summary.no_match_precision),
            "no_match_recall": _r(summary.no_match_recall),
            "per_modality": {k: v.summary() for k, v in sorted(self.per_modality.items())},
            "per_source": {k: v.summary() for k, v in sorted(self.per_source.items())},
            "per_split": {k: v.summary() for k, v in sorted(self.per_split.items())},
            "elapsed_s": _r(self.elapsed_s, 3),
            "cases_per_second": _r(self.cases_per_second, 1),
        }


def build_report(outcomes: Iterable[CaseOutcome], success_threshold: float) -> TrainingReport:
    report = TrainingReport(success_threshold=success_threshold)
    for o in outcomes:
        report.add(o)
    return report


def running_metrics(outcomes: Iterable[CaseOutcome]) -> dict[str, Any]:
    """Small running totals stored with each checkpoint."""
    return dataclasses.asdict(group_stats(outcomes))


# -- rendering -------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render_report(report: dict[str, Any], title: str = "Training report") -> list[Any]:
    """Rich tables for a report dict (as stored), so stored sessions render the same way."""
    from rich.table import Table

    main = Table(title=title, show_header=False)
    main.add_column("metric")
    main.add_column("value", justify="right")
    main.add_row("cases processed", str(report["cases_processed"]))
    main.add_row("labelled cases", str(report["labelled_cases"]))
    main.add_row("top-1 accuracy (labelled)", _pct(report["top1_accuracy"]))
    main.add_row("top-5 accuracy (labelled)", _pct(report["top5_accuracy"]))
    main.add_row("mean reciprocal rank", "-" if report["mrr"] is None else f"{report['mrr']:.3f}")
    main.add_row(f"success rate (confidence >= {report['success_threshold']})", _pct(report["success_rate"]))
    main.add_row(
        "average confidence",
        "-" if report["average_confidence"] is None else f"{report['average_confidence']:.3f}",
    )
    main.add_row("no-match answers", str(report["no_matches"]))
    main.add_row("case errors / unreadable rows", f"{report['errors']} / {report['file_errors']}")
    if report.get("cases_per_second") is not None:
        main.add_row("cases/s", f"{report['cases_per_second']:.1f}")

    cal = Table(title="Calibration (labelled cases per confidence band)")
    for col in ("band", "cases", "labelled", "top-1 accuracy", "mean confidence"):
        cal.add_column(col, justify="right")
    for b in report["calibration"]:
        mc = "-" if b["mean_confidence"] is None else f"{b['mean_confidence']:.3f}"
        cal.add_row(b["band"], str(b["cases"]), str(b["labelled"]), _pct(b["accuracy"]), mc)

    tables = [main, cal]
    for key, label in (("per_modality", "modality"), ("per_source", "data source"), ("per_split", "split")):
        t = Table(title=f"By {label}")
        for col in (label, "cases", "labelled", "top-1", "top-5", "avg conf", "errors"):
            t.add_column(col, justify="left" if col == label else "right")
        for name, g in report[key].items():
            ac = "-" if g["average_confidence"] is None else f"{g['average_confidence']:.3f}"
            t.add_row(
                name,
                str(g["cases"]),
                str(g["labelled"]),
                _pct(g["top1_accuracy"]),
                _pct(g["top5_accuracy"]),
                ac,
                str(g["errors"]),
            )
        tables.append(t)
    return tables
