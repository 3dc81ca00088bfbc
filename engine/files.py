"""Writing the user's files safely: whole or not at all, as new files, never through a link.

Every file a command writes outside a run's store (an export, a report, an
evaluation's JSON) is written under a fresh temporary name in the target's
folder (created with ``O_EXCL``, so never an existing file or a link), then
renamed over the target. An existing target that is a hard link to another
file (a seed's, say) is therefore replaced, not written through; a failed
write (a full disk) removes the temporary file and leaves the target as it
was, and is one line naming the target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import AcdcError, AcdcRuntimeError


class WriteFailed(AcdcRuntimeError):
    """A file could not be written (nothing was left behind); ``target`` and ``strerror`` say which and why,
    so that a caller writing through a temporary folder can name its own target instead."""

    def __init__(self, target: Path, strerror: str) -> None:
        super().__init__(f"cannot write {target}: {strerror}")
        self.target, self.strerror = Path(target), strerror


def check_target(target: Path, what: str) -> None:
    """Refuses, before any work, a file target that cannot be written: a directory, a missing or unwritable
    folder. ``what`` names the option in the message (e.g. ``--json``)."""
    target = Path(target)
    if target.is_dir():
        raise AcdcError(f"{what} {target} is a directory, not a file")
    if not target.parent.is_dir():
        raise AcdcError(f"{what} {target}: its folder {target.parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
    except OSError as exc:
        raise AcdcError(f"{what} {target}: cannot write in {target.parent} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _replace_with_new(target: Path, fill, name_target: Path | None = None) -> None:
    """Creates a temporary file beside ``target``, lets ``fill(file)`` write it, syncs it and renames it
    over ``target``; on failure removes it and raises :class:`WriteFailed` naming ``name_target``
    (default: ``target``). ``fill`` may raise its own error first (a source that cannot be read)."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        tmp = Path(tmp)
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise WriteFailed(name_target or target, exc.strerror or str(exc)) from None


def write_new(target: Path, data: str | bytes) -> None:
    """Writes ``data`` to ``target`` as a new file (temporary name, then rename); one line naming the
    target if it cannot be written, and nothing left behind."""
    raw = data.encode() if isinstance(data, str) else data
    _replace_with_new(Path(target), lambda f: f.write(raw))


def copy_new(source: Path, target: Path, *, name_target: Path | None = None) -> None:
    """Copies ``source`` to ``target`` as a new file (temporary name, then rename); one line naming
    ``name_target`` (default: ``target``) if it cannot be written, and nothing left behind."""
    try:
        with open(source, "rb") as src:
            _replace_with_new(Path(target), lambda f: shutil.copyfileobj(src, f, 1 << 24), name_target)
    except OSError as exc:  # the source itself
        raise AcdcError(f"cannot read {source}: {exc.strerror or exc}") from None


def missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first (what ``mkdir(parents=True)`` makes)."""
    out = []
    path = Path(path).absolute()
    while not os.path.lexists(path) and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def remove_empty_dirs(dirs: list[Path]) -> None:
    """Removes those of ``dirs`` (deepest first) that are empty; others are left as they are."""
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()
