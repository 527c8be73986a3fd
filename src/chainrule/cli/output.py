"""A run's output folder as one unit, and JSON that is always valid.

Part of :mod:`chainrule.cli` (level 9).

``chainrule train --out DIR`` writes three files: ``model.safetensors``,
``metrics.json`` and ``history.png``. :class:`RunDir` makes them one unit:

1. :meth:`RunDir.prepare`, before training: the folder is created and proven
   writable (a file is written, fsynced and removed), so a bad ``--out`` fails in
   a second, not after the training it would have thrown away; temporary files
   that killed runs left there are removed.
2. :meth:`RunDir.commit`, after training: an ``INCOMPLETE`` marker is written
   first; then each file is written atomically and fsynced
   (:func:`chainrule.fileio.write_atomic`), each naming the same ``run_id``
   (the model in its metadata, ``metrics.json`` in a field); then the marker is
   removed and the folder fsynced.

So the folder holds either the previous run's complete set (training failed or
was interrupted before the commit), or this run's complete set, or an
``INCOMPLETE`` marker saying the files may come from different runs (a kill or a
full disk during the commit). ``metrics.json`` is strict JSON (a non-finite
number is ``null``). Every file gets the permissions ``open()`` gives
(``0o666`` less the umask).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainrule import serialize
from chainrule.fileio import check_writable, fsync_dir, remove_stale_temps, strict_json, write_atomic
from chainrule.layers import Sequential
from chainrule.train import History, plot_history

FILES = ("model.safetensors", "metrics.json", "history.png")
MARKER = "INCOMPLETE"


class RunDir:
    """The output folder of one ``chainrule train`` run (see the module docstring).

    Parameters
    ----------
    folder : path-like
        ``--out``.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{os.urandom(3).hex()}"

    def __repr__(self) -> str:
        return f"RunDir(folder={str(self.folder)!r}, run_id={self.run_id!r})"

    def prepare(self) -> None:
        """Create the folder, prove it writable, remove stale temporary files; before training.

        Raises
        ------
        OSError
            The folder cannot be created or written (the message names it).
        """
        try:
            check_writable(self.folder)
        except OSError as exc:
            reason = f"cannot write the output folder (choose another --out): {exc.strerror}"
            raise OSError(exc.errno, reason, str(self.folder)) from None
        for name in (*FILES, MARKER):
            remove_stale_temps(self.folder, name)

    def commit(
        self, model: Sequential, meta: dict[str, Any], metrics: dict[str, Any], history: History
    ) -> None:
        """Write the model, ``metrics.json`` and ``history.png`` as one unit."""
        marker = self.folder / MARKER
        write_atomic(
            marker,
            f"run {self.run_id} started writing {', '.join(FILES)} here and did not finish: these files "
            "may come from different runs. Train again to replace them.\n".encode(),
        )
        serialize.save(self.folder / FILES[0], model, {**meta, "run_id": self.run_id})
        text = strict_json({**metrics, "run_id": self.run_id}, indent=2) + "\n"
        write_atomic(self.folder / FILES[1], text.encode())
        write_atomic(self.folder / FILES[2], _png(lambda buffer: plot_history(history, buffer)))
        marker.unlink()
        fsync_dir(self.folder)


def _png(draw: Callable[[Any], None]) -> bytes:
    buffer = io.BytesIO()
    draw(buffer)
    return buffer.getvalue()


__all__ = ["FILES", "MARKER", "RunDir"]
