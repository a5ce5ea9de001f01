"""Every file of a run folder as text, compressed histories decompressed (a key check must see them)."""

from __future__ import annotations

import gzip
from pathlib import Path


def file_text(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    return path.read_text(errors="replace")


def folder_texts(folder: Path) -> dict[str, str]:
    """Path -> text of every file under `folder`."""
    return {str(p): file_text(p) for p in sorted(folder.rglob("*")) if p.is_file()}
