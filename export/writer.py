"""The one writer of bundle files.

Every change to a bundle folder (building one, fitting its troll threshold, rewriting its int8 graph, recording
an evaluation) goes through a :class:`BundleWriter` on a staged copy: the files are written there, the checksum
manifest is written last, the copy is verified with :meth:`earful.models.bundle.Bundle.load`, and only then does
it replace the folder. A failure at any step leaves the bundle as it was. Standard library only, so the runtime
side (an evaluation recording its figures) can write without importing torch or onnx.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from earful.hashing import sha256_file
from earful.models.bundle import MANIFEST, Bundle

__all__ = ["BundleWriter", "copy_bundle", "edit_bundle", "new_bundle", "portable", "portable_path", "run_name"]

#: Keys whose values name a training run or an encoder folder; a bundle records the folder's name only.
FOLDER_KEYS = frozenset({"output_dir", "init_from", "base", "base_model", "model", "refitted_from", "source"})

_ABSOLUTE = re.compile(r"^(/|~/|[A-Za-z]:[\\/]|\\\\)")


def run_name(folder: str | Path) -> str:
    """The name a bundle gives a run or encoder folder: its own name (``runs/default-stage3/best`` →
    ``default-stage3``), never the path it had on the machine that built the bundle."""
    path = Path(str(folder).replace("\\", "/").rstrip("/"))
    if path.name in ("best", "checkpoint") and path.parent.name:
        path = path.parent
    return path.name or str(folder)


def portable_path(path: str | Path) -> str:
    """A file path as a bundle may record it: relative to the repository (the working directory) when the file
    is inside it, such as ``data/train/olid.csv.gz``, which names the same file in every checkout; otherwise,
    and for run folders (``runs/…``), the file's name alone."""
    text = str(path)
    candidate = Path(text).expanduser()
    if _ABSOLUTE.match(text):
        try:
            candidate = candidate.resolve().relative_to(Path.cwd().resolve())
        except (ValueError, OSError):
            return _file_name(text)
    parts = candidate.parts
    if not parts or ".." in parts or parts[0] == "runs" or _ABSOLUTE.match(candidate.as_posix()):
        return _file_name(text)
    return candidate.as_posix()


def _file_name(text: str) -> str:
    return Path(text.replace("\\", "/").rstrip("/")).name or text


def _is_path(text: str) -> bool:
    return bool(_ABSOLUTE.match(text)) or text.startswith(("runs/", "./", "../"))


def portable(value: Any, key: str | None = None) -> Any:
    """``value`` (JSON data for a bundle file) with the build machine's paths taken out: run and encoder folders
    (:data:`FOLDER_KEYS`) by :func:`run_name`, any other absolute or ``runs/`` path by :func:`portable_path`;
    repository-relative data files stay as they are."""
    if isinstance(value, dict):
        return {k: portable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, key) for v in value]
    if isinstance(value, str) and value:
        if key in FOLDER_KEYS and ("/" in value or "\\" in value):
            return run_name(value)
        if _is_path(value):
            return portable_path(value)
    return value


class BundleWriter:
    """Writes the files of one staged bundle folder; :meth:`seal` writes the manifest over what is there."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        """Where a file of the bundle goes, for writers that take a path (an ONNX save, a quantizer)."""
        return self.directory / name

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def write_json(self, name: str, data: Any) -> None:
        self.path(name).write_text(json.dumps(data, indent=2), encoding="utf-8")

    def update_json(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Set the top-level keys ``changes`` in the JSON file ``name`` (created if missing); returns it."""
        data = {**self.read_json(name), **changes}
        self.write_json(name, data)
        return data

    def read_text(self, name: str) -> str | None:
        path = self.path(name)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text, encoding="utf-8")

    def copy_in(self, source: str | Path, name: str) -> None:
        shutil.copy(source, self.path(name))

    def remove(self, name: str) -> None:
        self.path(name).unlink()

    def seal(self) -> Bundle:
        """Write the checksum manifest over the folder's files and load the result (which verifies it)."""
        files = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(self.directory.iterdir())
            if p.is_file() and p.name != MANIFEST
        }
        manifest = {"algorithm": "sha256", "files": files}
        self.path(MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return Bundle.load(self.directory)


def _stage(near: Path, prefix: str) -> Path:
    parent = near.parent if near.parent.exists() else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _replace(target: Path, staged: Path) -> None:
    """Put ``staged`` at ``target``; an existing ``target`` is moved aside first and removed last."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.move(str(staged), str(target))
        return
    aside = _stage(target, "earful-old-")
    target.rename(aside / target.name)
    staged.rename(target)
    shutil.rmtree(aside)


@contextmanager
def new_bundle(out_dir: str | Path, overwrite: bool = False) -> Iterator[BundleWriter]:
    """A writer on an empty staged folder that becomes ``out_dir`` when the block ends without error."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
    stage = _stage(out_dir, "earful-bundle-")
    try:
        writer = BundleWriter(stage / "bundle")
        writer.directory.mkdir()
        yield writer
        writer.seal()
        _replace(out_dir, writer.directory)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def edit_bundle(directory: str | Path) -> Iterator[BundleWriter]:
    """A writer on a copy of the bundle at ``directory``; the copy, sealed and verified, replaces it at the end."""
    directory = Path(directory)
    Bundle.load(directory)  # never edit a bundle that does not verify
    stage = _stage(directory, "earful-edit-")
    try:
        writer = BundleWriter(stage / directory.name)
        shutil.copytree(directory, writer.directory)
        yield writer
        writer.seal()
        _replace(directory, writer.directory)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def copy_bundle(source: str | Path, out_dir: str | Path, replace: dict[str, Path] | None = None) -> Path:
    """A sealed copy of the bundle at ``source`` with the files in ``replace`` (name: new file) swapped in."""
    with new_bundle(out_dir) as writer:
        shutil.copytree(source, writer.directory, dirs_exist_ok=True)
        for name, path in (replace or {}).items():
            writer.copy_in(path, name)
    return Path(out_dir)
