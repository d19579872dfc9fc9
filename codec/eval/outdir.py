"""Write a folder of outputs all at once: build it in a temporary folder, then rename it into place.

    with staged_folder(Path("report"), force=False) as stage:
        (stage / "index.html").write_text(...)        # anything, files and folders
    # now report/ holds it all; after an error or Ctrl-C nothing of it is there

The temporary folder is a hidden sibling of the target (same file system, so renames are atomic).
A target that does not exist yet appears in one rename. An existing target must be an empty folder,
or ``force`` is needed; with ``force`` each top-level entry of the staged folder replaces the entry of
that name in the target (a file by ``os.replace``, a folder by renaming the old one aside, renaming
the new one in and deleting the old), and nothing else in the target is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import UsageError


def check_output_folder(path: Path, force: bool) -> None:
    """UsageError unless ``path`` is missing, an empty folder, or a folder and ``force``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"output exists and is not a folder: {path}")
    if path.is_dir() and not force and any(path.iterdir()):
        raise UsageError(f"output folder exists and is not empty: {path} (use --force to overwrite)")


def _folder_mode() -> int:
    """Permission bits of a normally created folder (0o777 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


@contextlib.contextmanager
def staged_folder(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success move its contents to ``path`` (module doc).

    The target is checked (:func:`check_output_folder`) before and again after the work. Its parent
    folders are created if needed. On any error (KeyboardInterrupt included) the temporary folder is
    deleted and ``path`` is left as it was.
    """
    target = Path(os.path.abspath(path))
    check_output_folder(target, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    except OSError as exc:
        raise UsageError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    try:
        yield stage
        check_output_folder(target, force)
        os.chmod(stage, _folder_mode())
        if not target.exists():
            os.rename(stage, target)
        else:
            _replace_entries(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _replace_entries(stage: Path, target: Path) -> None:
    """Move every top-level entry of ``stage`` into ``target``, replacing entries of the same name
    (a file by a file, a folder by a folder; any other pairing is refused before anything moves)."""
    entries = sorted(stage.iterdir())
    for entry in entries:
        dest = target / entry.name
        if dest.exists() and dest.is_dir() != entry.is_dir():
            kind = "folder" if dest.is_dir() else "file"
            raise UsageError(f"cannot replace {kind} {dest} with a {'folder' if entry.is_dir() else 'file'}")
    for entry in entries:
        dest = target / entry.name
        if entry.is_dir() and dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".old", dir=target))
            os.rename(dest, old / entry.name)
            os.rename(entry, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(entry, dest)
