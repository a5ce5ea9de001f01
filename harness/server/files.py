"""File records: creation, auth-free upload by capability URL, stored bytes, downloads."""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from harness.server.timefmt import rfc3339

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class FileTooLarge(Exception):
    """An upload above the server's size cap."""


@dataclass
class FileRecord:
    """One stored file, owned by one key."""

    id: str
    token: str
    owner: str
    filename: str | None
    content_type: str
    declared_size: int | None
    path: str | None
    base_url: str
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    data: bytes | None = None

    @property
    def url_name(self) -> str:
        return _SAFE_NAME.sub("_", self.filename or "file") or "file"

    @property
    def uri(self) -> str:
        return f"{self.base_url}/files/{self.id}/{self.url_name}"

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/upload/{self.token}"

    def to_dict(self) -> dict[str, Any]:
        size = len(self.data) if self.data is not None else self.declared_size
        return {
            "id": self.id,
            "short_id": self.id[5:13],
            "created_at": rfc3339(self.created),
            "updated_at": rfc3339(self.updated),
            "visibility": "private",
            "path": self.path,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": size,
            "upload_url": self.upload_url,
            "uri": self.uri,
            "uploaded": self.data is not None,
        }


class FileStore:
    """All files, bounded by count, age and total bytes (oldest evicted first)."""

    def __init__(
        self,
        max_upload_bytes: int,
        max_files: int,
        max_total_bytes: int,
        retention_seconds: float,
        alter_uploads: bool = False,
    ) -> None:
        self.max_upload_bytes = max_upload_bytes
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes
        self.retention_seconds = retention_seconds
        self.alter_uploads = alter_uploads
        self._by_id: OrderedDict[str, FileRecord] = OrderedDict()
        self._by_token: dict[str, FileRecord] = {}
        self._total_bytes = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def create(
        self,
        owner: str,
        base_url: str,
        filename: str | None,
        content_type: str | None,
        size: int | None,
        path: str | None,
    ) -> FileRecord:
        record = FileRecord(
            id="file_" + secrets.token_hex(16),
            token=secrets.token_urlsafe(24),
            owner=owner,
            filename=filename,
            content_type=content_type or "application/octet-stream",
            declared_size=size,
            path=path,
            base_url=base_url,
        )
        self._by_id[record.id] = record
        self._by_token[record.token] = record
        self.evict()
        return record

    def create_with_bytes(
        self, owner: str, base_url: str, data: bytes, content_type: str, filename: str
    ) -> FileRecord:
        """Store an app's output file, uploaded at creation."""
        record = self.create(owner, base_url, filename, content_type, len(data), None)
        self._store(record, data)
        return record

    def owned(self, owner: str, limit: int) -> list[FileRecord]:
        """The owner's most recent files, newest first."""
        return list(islice((r for r in reversed(self._by_id.values()) if r.owner == owner), limit))

    def by_token(self, token: str) -> FileRecord | None:
        return self._by_token.get(token)

    def by_id(self, file_id: str) -> FileRecord | None:
        return self._by_id.get(file_id)

    def by_uri(self, uri: str, base_url: str) -> FileRecord | None:
        """Resolve a URI of this server (`<base>/files/<id>/<name>`) to its record."""
        prefix = base_url + "/files/"
        if not uri.startswith(prefix):
            return None
        file_id = uri[len(prefix):].split("/", 1)[0]
        return self._by_id.get(file_id)

    def put(self, record: FileRecord, data: bytes) -> None:
        if len(data) > self.max_upload_bytes:
            raise FileTooLarge(f"{len(data)} bytes exceed the cap of {self.max_upload_bytes}")
        if self.alter_uploads and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self._store(record, data)
        self.evict()

    def _store(self, record: FileRecord, data: bytes) -> None:
        if record.data is not None:
            self._total_bytes -= len(record.data)
        record.data = data
        record.updated = time.time()
        self._total_bytes += len(data)

    def delete(self, file_id: str) -> None:
        record = self._by_id.pop(file_id, None)
        if record is None:
            return
        self._by_token.pop(record.token, None)
        if record.data is not None:
            self._total_bytes -= len(record.data)

    def evict(self, now: float | None = None) -> int:
        """Drop the oldest files past the count, byte or age bounds; return how many went."""
        now = time.time() if now is None else now
        dropped = 0
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            too_old = now - oldest.created > self.retention_seconds
            if not (too_old or len(self._by_id) > self.max_files
                    or self._total_bytes > self.max_total_bytes):
                break
            self.delete(oldest.id)
            dropped += 1
        return dropped
