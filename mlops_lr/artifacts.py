"""Atomic artifact writes, the sha256 manifest, and verified loading.

A run writes every file of a directory through :func:`write_artifacts`: all files are staged as
temporaries first, then renamed into place, and ``manifest.json`` (their sha256 digests plus the
run's metadata) is renamed last. A run that fails before that leaves the previous artifacts as
they were; loaders check digests against the manifest before they trust (or unpickle) a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlops_lr.exceptions import ArtifactError
from mlops_lr.folded import FoldedModel
from mlops_lr.folded_classifier import FoldedClassifier
from mlops_lr.quantized_classifier import QuantizedFoldedClassifier
from mlops_lr.quantized_folded import QuantizedFoldedModel

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mlops-lr/manifest/1"
# The float model's directory (mlops_lr.training writes it): the fitted estimator (or
# pipeline), its folded form (what every backend loads), its metrics and the first test rows.
MODEL_FILE = "model.joblib"
FOLDED_FILE = "folded.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.json"
# A quantized model's directory (stage quantize writes it).
QUANTIZED_MODEL = "model.json"


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def json_bytes(obj: Any) -> bytes:
    """Deterministic, strict JSON (no NaN), UTF-8, with a trailing newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def joblib_bytes(obj: Any) -> bytes:
    """``obj`` serialised by :func:`joblib.dump`, as bytes."""
    import joblib  # deferred: serving and predicting never pickle, and start faster without it

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def write_artifacts(
    directory: str | Path, files: Mapping[str, bytes], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """Write ``files`` (name → content) and their manifest into ``directory``, atomically per file.

    Returns the manifest that was written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": MANIFEST_FORMAT,
        "files": {
            name: {"sha256": sha256_bytes(data), "bytes": len(data)} for name, data in files.items()
        },
        **metadata,
    }
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data in [*files.items(), (MANIFEST, json_bytes(manifest))]:
            staged.append((_stage(directory, data), directory / name))
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    return manifest


def _stage(directory: Path, data: bytes) -> Path:
    """Write ``data`` to a durable temporary file in ``directory`` and return its path."""
    descriptor, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(name, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/manifest.json``.

    Raises
    ------
    ArtifactError
        The manifest is missing or is not a manifest of this tool.
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"no {MANIFEST} in {directory}: run `make train` first") from None
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(f"{path} is not an mlops-lr manifest ({MANIFEST_FORMAT})")
    return manifest


def read_verified(directory: str | Path, name: str) -> bytes:
    """Read ``directory/name`` and check its SHA-256 against the manifest.

    Raises
    ------
    ArtifactError
        The file is missing, not in the manifest, or its content differs from what was written.
    """
    directory = Path(directory)
    entry = read_manifest(directory)["files"].get(name)
    if entry is None:
        raise ArtifactError(f"{name} is not listed in {directory / MANIFEST}")
    try:
        data = (directory / name).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{directory / name} is missing: run `make train` again") from None
    if sha256_bytes(data) != entry["sha256"]:
        raise ArtifactError(
            f"{directory / name} does not match its sha256 in {MANIFEST}: the file was modified "
            "or corrupted; refusing to load it (run `make train` again)"
        )
    return data


def load_verified_joblib(directory: str | Path, name: str) -> Any:
    """Unpickle ``directory/name`` with joblib, only after its digest has been verified."""
    import joblib

    return joblib.load(io.BytesIO(read_verified(directory, name)))


def load_folded(directory: str | Path, name: str = FOLDED_FILE) -> FoldedModel | FoldedClassifier:
    """Load a folded model, regressor or classifier (JSON, no pickle), after verifying its
    digest.

    Raises
    ------
    ArtifactError
        The file is missing, modified, or not a valid folded model.
    """
    return _load_document(directory, name, FoldedClassifier.read, "folded model")


def load_quantized(
    directory: str | Path, name: str = QUANTIZED_MODEL
) -> QuantizedFoldedModel | QuantizedFoldedClassifier:
    """Load a quantized model, regressor or classifier (JSON, no pickle), after verifying
    its digest.

    Raises
    ------
    ArtifactError
        The file is missing, modified, or not a valid quantized model.
    """
    return _load_document(directory, name, QuantizedFoldedClassifier.read, "quantized model")


def _load_document(directory: str | Path, name: str, parse: Any, what: str) -> Any:
    data = read_verified(directory, name)
    try:
        return parse(json.loads(data))
    except Exception as error:  # any malformed document is a bad artifact, never a crash
        raise ArtifactError(f"{Path(directory) / name} is not a valid {what}: {error}") from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file in the directory of ``path`` to write, renamed to ``path`` when the
    ``with`` block finishes.

    On any error (KeyboardInterrupt included) the temporary is removed and an existing
    ``path`` is left as it was. The block must close what it opened on the temporary.
    """
    path = Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(descriptor)
    try:
        yield Path(name)
        os.chmod(name, 0o644)  # mkstemp creates 0600; an output is for others to read
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(directory: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (created if needed) for the ``with`` block, so
    that concurrent runs (a parallel sweep) check and fill a shared directory one at a time."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
