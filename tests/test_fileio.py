"""Tests of chainrule.fileio: atomic, durable writes; stale temporary files; strict JSON (issue 14)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainrule import fileio


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_write_atomic_replaces_with_the_usual_permissions_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "m.json"
    fileio.write_atomic(target, b"old")
    fileio.write_atomic(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # as open() would; mkstemp gave 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    fileio.write_atomic(target, b"old")

    def full_disk(f: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        fileio.write_atomic(target, full_disk)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_the_file_and_then_its_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    fileio.write_atomic(tmp_path / "m.bin", b"x")
    assert synced == [False, True]  # the temporary file before the rename, the folder after it


def test_stale_temps_of_dead_or_old_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    child = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = subprocess.run(
        child, capture_output=True, text=True, check=True
    ).stdout.strip()  # exited: its PID is free
    live = str(os.getppid())
    files = {
        "dead": tmp_path / f".m.bin.{dead}.ab12.tmp",
        "live": tmp_path / f".m.bin.{live}.cd34.tmp",
        "old": tmp_path / f".m.bin.{live}.ef56.tmp",
        "nopid": tmp_path / ".m.bin.x8y7z6.tmp",  # tempfile.mkstemp's names, from before this scheme
        "other": tmp_path / f".other.bin.{dead}.ab12.tmp",
    }
    for path in files.values():
        path.write_text("left behind")
    day_ago = time.time() - fileio.STALE_SECONDS - 60
    os.utime(files["old"], (day_ago, day_ago))
    fileio.write_atomic(tmp_path / "m.bin", b"x")
    left = {name for name, path in files.items() if path.exists()}
    assert left == {"live", "other"}


def test_check_writable_creates_the_folder_and_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    assert fileio.check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        fileio.check_writable(tmp_path / "f" / "run")


def test_strict_json_writes_null_for_non_finite_numbers() -> None:
    text = fileio.strict_json({"a": float("nan"), "b": [1.0, float("inf"), (2, -float("inf"))], "c": "x"})

    def refuse(constant: str) -> None:
        raise AssertionError(constant)

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [1.0, None, [2, None]], "c": "x"}
