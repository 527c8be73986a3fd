"""Atomic, durable file writes (level 1): what "saved" means everywhere in chainrule.

:func:`write_atomic` gives every file chainrule writes (models, checkpoints,
``metrics.json``, plots, cached data sets) four properties:

- **atomic**: the bytes go to a temporary file beside the target, which is then
  renamed over it (``os.replace``); a reader, or a crash at any moment (``kill -9``,
  a full disk, a power cut after the directory sync), sees the old file or the new
  one, never a mix or a truncated file;
- **durable**: the temporary file is ``fsync``-ed before the rename and the folder
  after it, so a rename that returned survives a power cut;
- **clean**: a failed write removes its temporary file; temporary files left by a
  process that was killed (its PID no longer runs, or it is more than a day old) are
  removed by the next write to the same folder;
- **plain permissions**: the file gets the mode ``open()`` would give it
  (``0o666`` less the umask), like any other file the user writes.

Temporary files are named ``.<target name>.<pid>.<random>.tmp``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

STALE_SECONDS = 24 * 3600  # a temporary file this old is stale even if its PID runs again


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or no way to tell: keep the file
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove the temporary files of earlier writes of ``name`` in ``folder`` whose writer is gone.

    A writer is gone when its PID (in the file name) no longer runs, or the file is
    older than :data:`STALE_SECONDS`. Returns the removed paths.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    prefix = f".{name}."
    for path in folder.iterdir():
        if not (path.name.startswith(prefix) and path.name.endswith(".tmp")):
            continue
        pid_text = path.name[len(prefix) :].split(".", 1)[0]
        try:
            old = time.time() - path.stat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if old or not (pid_text.isdigit() and _pid_running(int(pid_text))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    if os.name == "nt":  # NOTE: Windows cannot open a directory; its renames are journaled
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path``, atomically.

    The parent folder is created if needed. See the module docstring for what is guaranteed.

    Raises
    ------
    OSError
        The folder cannot be written, or the disk is full; ``path`` is then unchanged
        and no temporary file is left.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder, path.name)
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # 0o666 and the umask, as open() does (tempfile.mkstemp would make it 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``, in nested dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def strict_json(value: Any, indent: int | None = None) -> str:
    """JSON as RFC 8259 has it: a non-finite number is ``null``, never ``NaN`` or ``Infinity``."""
    return json.dumps(finite_json(value), indent=indent, allow_nan=False)


def check_writable(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and prove a file can be written there (then removed).

    Raises
    ------
    OSError
        The folder cannot be created or written (read-only, a file in the way, no space).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f"..probe.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, b"0")
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)
    return folder


__all__ = ["check_writable", "finite_json", "fsync_dir", "remove_stale_temps", "strict_json", "write_atomic"]
