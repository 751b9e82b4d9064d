"""``echoquality report``: one self-contained HTML file summarising an inference run.

Inline CSS, an inline SVG score histogram and the previews embedded as ``data:`` URIs, so the file
can be mailed to people who will not run a server. Same privacy rules as the review app: folder
aliases instead of folder names, previews masked to the ultrasound sector unless ``raw_frames``.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from concurrent.futures import wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .catalog import Catalog, Clip, build_catalog, preprocess_config_of_run
from .previews import PreviewError, PreviewService

HERE = Path(__file__).parent
BINS = 20


@dataclass
class GroupRow:
    """One line of the per-folder / per-machine tables."""

    name: str
    files: int
    scored: int
    passed: int
    failed: int
    skipped: int
    mean_score: float | None

    @property
    def pass_rate(self) -> float | None:
        return None if not self.scored else 100.0 * self.passed / self.scored


def group_rows(clips: list[Clip], attr: str) -> list[GroupRow]:
    groups: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        groups[getattr(c, attr)].append(c)
    rows = []
    for name in sorted(groups):
        cs = groups[name]
        scores = [c.score for c in cs if c.score is not None]
        rows.append(
            GroupRow(
                name,
                len(cs),
                len(scores),
                sum(c.status == "PASS" for c in cs),
                sum(c.status == "FAIL" for c in cs),
                sum(c.status == "SKIPPED" for c in cs),
                sum(scores) / len(scores) if scores else None,
            )
        )
    return rows


def histogram_svg(scores: list[float], threshold: float, width: int = 560, height: int = 180) -> str:
    """An inline SVG histogram of *scores* in [0, 1] with the threshold line (no external assets)."""
    counts = [0] * BINS
    for s in scores:
        counts[min(int(max(s, 0.0) * BINS), BINS - 1)] += 1
    top = max(counts) or 1
    pad, bw = 24, (width - 2 * 24) / BINS
    bars = []
    for i, n in enumerate(counts):
        h = (height - 2 * pad) * n / top
        x, y = pad + i * bw, height - pad - h
        colour = "#1f7a3a" if (i + 0.5) / BINS >= threshold else "#b3261e"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{i / BINS:.2f}-{(i + 1) / BINS:.2f}: {n}</title></rect>"
        )
    tx = pad + threshold * (width - 2 * pad)
    axis = "".join(
        f'<text x="{pad + v * (width - 2 * pad):.1f}" y="{height - 6}" font-size="10" text-anchor="middle">{v:.1f}</text>'
        for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="score distribution">{"".join(bars)}'
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{pad / 2}" y2="{height - pad}" stroke="#16324a" stroke-dasharray="4 3"/>'
        f'<text x="{tx + 4:.1f}" y="{pad}" font-size="11">threshold {threshold:.2f}</text>{axis}'
        f'<text x="{pad}" y="{pad / 2 + 4}" font-size="10">max {top}</text></svg>'
    )


def embed_previews(service: PreviewService, clips: list[Clip], timeout_s: float = 600.0) -> dict[str, str]:
    """clip id -> ``data:image/webp;base64,...`` (clips whose preview cannot be made are left out)."""
    futures = {c.id: service.request(c.source, "thumb") for c in clips}
    wait(list(futures.values()), timeout=timeout_s)
    out = {}
    for cid, fut in futures.items():
        if not fut.done():
            continue
        try:
            data = Path(fut.result()).read_bytes()
        except (PreviewError, OSError):
            continue
        out[cid] = "data:image/webp;base64," + base64.b64encode(data).decode()
    return out


def _run_facts(results_dir: Path) -> dict[str, object]:
    try:
        info = json.loads((results_dir / "run_info.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    keys = ("architecture", "weights_is_reference", "weights_note", "end_time", "device")
    return {k: info.get(k) for k in keys if info.get(k) not in (None, "")}


def render_report(catalog: Catalog, previews: dict[str, str], top: int, raw_frames: bool) -> str:
    """The HTML text (Jinja2, autoescaped) for *catalog*."""
    clips = catalog.clips
    scored = [c for c in clips if c.score is not None]
    worst = sorted(scored, key=lambda c: (c.score, c.folder, c.key))[:top]
    uncertain = sorted(scored, key=lambda c: (c.uncertainty, c.folder, c.key))[:top]
    skips = Counter(c.skip_reason for c in clips if c.skip_reason)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html").render(
        css=(HERE / "static" / "report.css").read_text(),
        threshold=catalog.threshold,
        totals={
            "files": len(clips),
            "scored": len(scored),
            "pass": sum(c.status == "PASS" for c in clips),
            "fail": sum(c.status == "FAIL" for c in clips),
            "skipped": len(clips) - len(scored),
        },
        histogram=histogram_svg([c.score for c in scored], catalog.threshold),
        folders=group_rows(clips, "folder_label"),
        machines=group_rows(clips, "machine_type"),
        worst=worst,
        uncertain=uncertain,
        skips=skips.most_common(),
        previews=previews,
        facts=_run_facts(catalog.results_dir),
        raw_frames=raw_frames,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def write_report(
    results_dir: Path,
    html_path: Path,
    *,
    data_dir: Path | None = None,
    top: int = 12,
    workers: int = 2,
    show_identifiers: bool = False,
    raw_frames: bool = False,
    cache_dir: Path | None = None,
) -> Path:
    """Build the report of *results_dir* into *html_path* (previews cached under ``<results>/review``)."""
    catalog = build_catalog(results_dir, data_dir, show_identifiers=show_identifiers)
    cache = Path(cache_dir) if cache_dir else Path(results_dir) / "review" / "previews"
    service = PreviewService(
        cache, masked=not raw_frames, workers=workers, cfg=preprocess_config_of_run(Path(results_dir))
    )
    scored = [c for c in catalog.clips if c.score is not None]
    chosen = {c.id: c for c in sorted(scored, key=lambda c: c.score)[:top]}
    chosen |= {c.id: c for c in sorted(scored, key=lambda c: c.uncertainty)[:top]}
    try:
        previews = embed_previews(service, list(chosen.values()))
    finally:
        service.shutdown()
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(render_report(catalog, previews, top, raw_frames), encoding="utf-8")
    tmp.replace(html_path)
    return html_path
