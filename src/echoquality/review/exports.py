"""Label exports: the ``path,label`` CSV that ``prepare-data --labels`` reads, and a JSON history.

By default no export names a patient: a CSV path points into ``<workspace>/links/<folder alias>/...``,
a symbolic link to the real file (``prepare-data`` resolves links, so it finds the clip), and the JSON
uses the folder alias. ``--show-identifiers`` exports the real paths (relative to the data folder).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .catalog import Catalog, Clip
from .store import LabelEvent

PREPARE_LABELS = {"good": "1", "poor": "0"}  # unsure rows are left out: prepare-data needs 1/0


class ExportError(Exception):
    """The export cannot be written (e.g. this file system refuses symbolic links)."""


def _link(links_dir: Path, clip: Clip) -> Path:
    """``links/<folder alias>/<key>`` -> the real file, created or refreshed; returns the link path."""
    link = links_dir / clip.folder_label / clip.key_label
    # lexical check (the link itself points outside on purpose): no '..' may climb out of links_dir
    if not Path(os.path.normpath(link)).is_relative_to(os.path.normpath(links_dir)):
        raise ExportError(f"unsafe key for a link: {clip.key_label[:80]!r}")
    link.parent.mkdir(parents=True, exist_ok=True)
    target = Path(os.path.abspath(clip.source))
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(target)
        tmp.replace(link)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"cannot create links under {links_dir} ({exc}); restart with --show-identifiers to export real paths"
        ) from None
    return link


def export_path(catalog: Catalog, clip: Clip, links_dir: Path, show_identifiers: bool) -> str:
    """The CSV path of *clip*: a link (default) or the real path relative to the data folder."""
    if not show_identifiers:
        return str(Path(os.path.abspath(_link(links_dir, clip))))
    src = Path(os.path.abspath(clip.source))
    if catalog.data_dir is not None:
        base = Path(os.path.abspath(catalog.data_dir))
        if src.is_relative_to(base):
            return src.relative_to(base).as_posix()
    return str(src)


def labels_csv(
    catalog: Catalog, current: dict[str, LabelEvent], links_dir: Path, show_identifiers: bool
) -> str:
    """``path,label`` rows (1 good, 0 poor) for the clips whose latest label is good or poor."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label"])
    for clip in catalog.clips:
        event = current.get(clip.id)
        if event is None or event.label not in PREPARE_LABELS:
            continue
        w.writerow([export_path(catalog, clip, links_dir, show_identifiers), PREPARE_LABELS[event.label]])
    return buf.getvalue()


def labels_json(catalog: Catalog, history: list[LabelEvent]) -> dict[str, object]:
    """Every decision, oldest first, with the clip's shown folder/key, score and status."""
    rows = []
    for e in history:
        clip = catalog.by_id.get(e.clip_id)
        rows.append(
            {
                **e.to_dict(),
                "folder": clip.folder_label if clip else None,
                "key": clip.key_label if clip else None,
                "machine_type": clip.machine_type if clip else None,
                "score": clip.score if clip else None,
                "status": clip.status if clip else None,
            }
        )
    return {"threshold": catalog.threshold, "labels": rows}
