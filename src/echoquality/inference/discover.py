"""Which inputs a run sees: the study sub-folders of the data folder and every entry below them.

Nothing inside a study folder disappears silently: entries that are not files (a directory named
``*.dcm``, a FIFO, a dangling or looping link) are listed with a skip reason, and classified without
being opened (a FIFO would block).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InputFile:
    folder: str
    key: str  # POSIX path relative to the folder
    path: Path
    skip: tuple[str, str] | None = None  # (reason, detail) for entries that cannot be read as files


#: Directory names that look like DICOM files; such a directory is reported (and still searched).
_FILE_LIKE_SUFFIXES = (".dcm", ".dicom", ".dic")
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special_kind(mode: int) -> str:
    return next((text for test, text in _SPECIAL_KINDS if test(mode)), "not a regular file")


def _link_entry(folder: str, key: str, path: Path) -> InputFile:
    """A symbolic link: its target file, or a skip (dangling, loop, directory, special file)."""
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputFile(folder, key, path, ("unreadable", "symbolic link loop"))
        if exc.errno == errno.ENOENT:
            target = os.readlink(path)
            return InputFile(folder, key, path, ("unreadable", f"dangling symbolic link to {target}"))
        return InputFile(folder, key, path, ("unreadable", f"cannot follow symbolic link: {exc}"))
    if stat.S_ISREG(st.st_mode):
        return InputFile(folder, key, path)
    if stat.S_ISDIR(st.st_mode):
        return InputFile(folder, key, path, ("not_a_file", "symbolic link to a directory (not followed)"))
    return InputFile(folder, key, path, ("not_a_file", f"symbolic link to {_special_kind(st.st_mode)}"))


def _walk(folder: str, root: Path, rel: str, excluded: set[Path]) -> Iterator[InputFile]:
    """Every entry below ``root/rel``: files (followed links included) and, with a skip reason,
    everything else that is not a plain directory. Never opens an entry, so a FIFO cannot block."""
    here = root / rel if rel else root
    try:
        with os.scandir(here) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if rel:
            yield InputFile(folder, rel, here, ("unreadable", f"cannot list directory: {exc.strerror}"))
        return
    for entry in entries:
        key = f"{rel}/{entry.name}" if rel else entry.name
        path = here / entry.name
        try:
            if entry.is_symlink():
                found = _link_entry(folder, key, path)
            elif entry.is_dir(follow_symlinks=False):
                if path.resolve() in excluded:
                    continue
                if entry.name.lower().endswith(_FILE_LIKE_SUFFIXES):
                    yield InputFile(folder, key, path, ("not_a_file", "a directory named like a DICOM file"))
                yield from _walk(folder, root, key, excluded)
                continue
            elif entry.is_file(follow_symlinks=False):
                found = InputFile(folder, key, path)
            else:
                kind = _special_kind(entry.stat(follow_symlinks=False).st_mode)
                found = InputFile(folder, key, path, ("not_a_file", f"{kind}: not read"))
        except OSError as exc:
            found = InputFile(folder, key, path, ("unreadable", f"cannot inspect: {exc.strerror or exc}"))
        if found.skip is None and any(path.resolve().is_relative_to(e) for e in excluded):
            continue
        yield found


def discover(data_dir: Path, exclude: Sequence[Path] = ()) -> dict[str, list[InputFile]]:
    """Immediate sub-folders of *data_dir* (sorted) -> every entry below them (recursive, sorted by key).

    Files are kept whatever their extension (DICOM is detected by content). Plain directories are
    searched, not listed; directories named like DICOM files (``*.dcm``), dangling or looping symbolic
    links, links to directories and FIFOs/sockets/devices are listed with a skip reason (``not_a_file``
    or ``unreadable``) so that nothing disappears silently. Hidden sub-folders and the folders in
    *exclude* (e.g. an output folder inside the data folder) are ignored.
    """
    excluded = {p.resolve() for p in exclude}
    out: dict[str, list[InputFile]] = {}
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.resolve() in excluded:
            continue
        out[sub.name] = sorted(_walk(sub.name, sub, "", excluded), key=lambda f: f.key)
    return out
