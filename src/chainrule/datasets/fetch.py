"""The opt-in download of MNIST and Fashion-MNIST: mirrors, SHA-256 digests, resumable fetches.

Part of :mod:`chainrule.datasets` (level 5). This is the only code that touches
the network, and only when :func:`download` (or ``download=True``) is called.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainrule import limits
from chainrule.datasets._core import Dataset, default_cache_dir
from chainrule.datasets.files import _has_idx_layout, load_idx_folder
from chainrule.errors import ConfigError, DataError, LimitError
from chainrule.fileio import fsync_dir

# ----------------------------------------------------------------------------- opt-in download

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
# Published SHA-256 digests of the gzip files (the same values appear in torchvision, chainer,
# tensorflow-datasets checksum tables and elsewhere; see docs/datasets.md).
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError)


def download(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    sha256: Mapping[str, str] | None = None,
    backoff: float = 1.0,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> Path:
    """Fetch MNIST or Fashion-MNIST into ``<cache>/<name>/``, verified; the only network access.

    Each file is fetched from the first mirror that works, ``retries`` attempts
    per mirror with exponential ``backoff`` seconds between them. Bytes go to
    ``<file>.part``; an interrupted transfer is resumed with an HTTP Range request;
    the SHA-256 is checked before ``os.replace`` moves the file into place, so a
    partial or corrupt file never passes as a dataset. Files already present
    with the right digest are not fetched again.

    Bounded: a file is refused from a mirror as soon as the server announces
    (``Content-Length``) or sends more than ``max_bytes``, and the whole call stops
    at ``deadline`` seconds, checked after every piece received, so a server that
    trickles one byte at a time (never idle long enough for ``timeout``) is cut off.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    cache_dir : path-like, optional
        See :func:`default_cache_dir`.
    mirrors : sequence of str, optional
        Base URLs, each followed by a file name; defaults to :data:`MIRRORS` ``[name]``.
    timeout : float
        Seconds for each connection and read.
    retries : int
        Attempts per mirror (>= 1).
    sha256 : mapping of file name to hex digest, optional
        Defaults to :data:`SHA256` ``[name]``; its keys are the files fetched.
    backoff : float
        Seconds before the second attempt, doubled after each.
    max_bytes : int, optional
        Largest file accepted; default the limit ``max_download_bytes`` (64 MiB).
    deadline : float, optional
        Seconds for the whole call; default the limit ``download_deadline`` (1800).

    Returns
    -------
    Path
        The folder now holding the four verified ``.gz`` files.

    Raises
    ------
    ConfigError
        An unknown ``name``, or ``retries < 1``.
    DataError
        Every mirror failed for a file: each URL is listed with what went wrong
        (including a file over ``max_bytes`` or a malformed ``Content-Length``).
    LimitError
        The deadline passed (the file and the bytes received so far are named).
    """
    if name not in SHA256 and sha256 is None:
        raise ConfigError(f"download: unknown dataset {name!r}; downloadable: {sorted(SHA256)}.")
    if retries < 1:
        raise ConfigError(f"download: retries must be >= 1, got {retries}.")
    digests = dict(sha256) if sha256 is not None else SHA256[name]
    bases = tuple(mirrors) if mirrors is not None else MIRRORS.get(name, ())
    if not bases:
        raise ConfigError(f"download: no mirrors for {name!r}; pass mirrors=[base_url, ...].")
    budget = _Budget(
        max_bytes=int(max_bytes if max_bytes is not None else limits.get("max_download_bytes")),
        seconds=float(deadline if deadline is not None else limits.get("download_deadline")),
    )
    folder = default_cache_dir(cache_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for filename, digest in digests.items():
        final = folder / filename
        if final.is_file() and _sha256_of(final) == digest:
            continue
        _fetch_verified(
            filename,
            digest=digest,
            bases=bases,
            final=final,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            budget=budget,
        )
    return folder


class _Budget:
    """The byte cap per file and the deadline of one :func:`download` call."""

    def __init__(self, max_bytes: int, seconds: float) -> None:
        self.max_bytes, self.seconds = max_bytes, seconds
        self.expires = time.monotonic() + seconds

    def __repr__(self) -> str:
        return f"_Budget(max_bytes={self.max_bytes}, seconds={self.seconds})"

    def left(self, url: str, received: int) -> float:
        """Seconds left; a LimitError naming ``url`` once the deadline has passed."""
        left = self.expires - time.monotonic()
        if left <= 0:
            raise LimitError(
                f"download: {url}: the deadline of {self.seconds:g} s (download_deadline) passed with "
                f"{received} bytes of this file received: a stalled or trickling server, or a slow network. "
                f"{limits.how_to_raise('download_deadline')} Or pass download(deadline=SECONDS)."
            )
        return max(left, 0.001)


class _TooLargeError(Exception):
    """A server announced or sent more than the byte cap: try the next mirror."""


def _fetch_verified(
    filename: str,
    *,
    digest: str,
    bases: Sequence[str],
    final: Path,
    timeout: float,
    retries: int,
    backoff: float,
    budget: _Budget,
) -> None:
    """Try each mirror in turn until ``final`` holds bytes with the right SHA-256."""
    part = final.with_name(final.name + ".part")
    failures = []
    for base in bases:
        url = base.rstrip("/") + "/" + filename
        for attempt in range(retries):
            try:
                _http_get_resume(url, part, timeout, budget)
            except _TooLargeError as exc:
                part.unlink(missing_ok=True)
                failures.append(
                    f"{url}: {exc} {limits.how_to_raise('max_download_bytes')} Or pass download(max_bytes=N)."
                )
                break  # this mirror serves something else; try the next one
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                if exc.code in (403, 404, 410):
                    break  # the file is not there; retrying will not help
            except _NETWORK_ERRORS as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
            else:
                found = _sha256_of(part)
                if found == digest:
                    with open(part, "rb+") as f:  # durable before it is renamed into place
                        os.fsync(f.fileno())
                    os.replace(part, final)
                    fsync_dir(final.parent)
                    return
                part.unlink()
                failures.append(f"{url}: SHA-256 mismatch: got {found}, expected {digest}")
                break  # this mirror serves other bytes; try the next one
            if attempt + 1 < retries:
                time.sleep(min(backoff * 2**attempt, budget.left(url, 0)))
    raise DataError(
        f"could not download {filename} into {final.parent}; every mirror failed:\n  "
        + "\n  ".join(failures)
        + f"\nCheck the network, or fetch the file by hand into {final.parent} and load that folder."
    )


def _http_get_resume(url: str, part: Path, timeout: float, budget: _Budget) -> None:
    """GET ``url`` into ``part``, continuing from its current size with a Range request."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "chainrule"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=min(timeout, budget.left(url, have)))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is already whole
            return
        raise
    with response:
        resumed = bool(have) and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()  # the server resumed from elsewhere; start clean on the next attempt
            raise ConnectionError(f"bad Content-Range {response.headers.get('Content-Range')!r} for a resume")
        start = have if resumed else 0
        expected = _content_length(response.headers.get("Content-Length"))
        if expected is not None and start + expected > budget.max_bytes:
            raise _TooLargeError(
                f"the server announces {start + expected} bytes (Content-Length), over the limit "
                f"max_download_bytes = {budget.max_bytes}."
            )
        written = 0
        with open(part, "ab" if resumed else "wb") as out:
            # read1: whatever one receive brings, so the deadline is checked however slowly bytes come
            while chunk := response.read1(1 << 18):
                out.write(chunk)
                written += len(chunk)
                if start + written > budget.max_bytes:
                    raise _TooLargeError(
                        f"the server sent more than the limit max_download_bytes = {budget.max_bytes}."
                    )
                budget.left(url, start + written)
    # NOTE: http.client returns b"" rather than raising when a connection closes early,
    # so a short body is detected here; the .part stays for the next attempt to resume.
    if expected is not None and written < expected:
        raise ConnectionError(f"connection closed after {written} of {expected} bytes")


def _content_length(text: str | None) -> int | None:
    """The ``Content-Length`` header as bytes; a value that is not a number is the server's fault."""
    if text is None:
        return None
    if not text.strip().isdigit():
        raise ConnectionError(f"bad Content-Length {text!r} (not a number of bytes)")
    return int(text)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _cached_idx(name: str, download_: bool, cache_dir: str | os.PathLike[str] | None, **kw: Any) -> Dataset:
    folder = default_cache_dir(cache_dir) / name
    if not _has_idx_layout(folder):
        if not download_:
            raise DataError(
                f"{name} is not in the cache folder {folder}. Download it once with "
                f"chainrule.datasets.download({name!r}) or load({name!r}, download=True), "
                "or load a folder holding the four IDX files: load('path/to/folder')."
            )
        download(name, cache_dir=cache_dir, **kw)
    return load_idx_folder(folder, name=name)


def mnist(
    download: bool = False, cache_dir: str | os.PathLike[str] | None = None, **download_options: Any
) -> Dataset:
    """MNIST (60,000 / 10,000 handwritten digits, 28x28) from the cache; ``download=True`` fetches it once.

    Shapes
    ------
    x : (m, 784) float32 in [0, 1], y : (m,) int64.
    """
    return _cached_idx("mnist", download, cache_dir, **download_options)


def fashion_mnist(
    download: bool = False, cache_dir: str | os.PathLike[str] | None = None, **download_options: Any
) -> Dataset:
    """Fashion-MNIST (60,000 / 10,000 clothing images, 28x28) from the cache; ``download=True`` fetches it.

    Shapes
    ------
    x : (m, 784) float32 in [0, 1], y : (m,) int64.
    """
    return _cached_idx("fashion-mnist", download, cache_dir, **download_options)
