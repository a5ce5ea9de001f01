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


class FileGone(Exception):
    """An upload to a file that was evicted or deleted while its bytes arrived."""


class FileStore:
    """All files, bounded by age, per-key quotas and global count and bytes.

    Byte counts change only where a record enters or leaves the store, so they cannot drift.
    """

    def __init__(
        self,
        max_upload_bytes: int,
        max_files: int,
        max_total_bytes: int,
        retention_seconds: float,
        alter_uploads: bool = False,
        max_files_per_key: int = 1000,
        max_bytes_per_key: int = 64 * 1024 * 1024,
    ) -> None:
        self.max_upload_bytes = max_upload_bytes
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes
        self.retention_seconds = retention_seconds
        self.alter_uploads = alter_uploads
        self.max_files_per_key = max_files_per_key
        self.max_bytes_per_key = max_bytes_per_key
        self._by_id: OrderedDict[str, FileRecord] = OrderedDict()
        self._by_token: dict[str, FileRecord] = {}
        self._by_owner: dict[str, OrderedDict[str, FileRecord]] = {}
        self._bytes_of: dict[str, int] = {}
        self._total_bytes = 0

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def total_bytes(self) -> int:
        return self._total_bytes

    def bytes_of(self, owner: str) -> int:
        return self._bytes_of.get(owner, 0)

    def count_of(self, owner: str) -> int:
        return len(self._by_owner.get(owner, ()))

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
        self._by_owner.setdefault(owner, OrderedDict())[record.id] = record
        self._bytes_of.setdefault(owner, 0)
        self.evict()
        return record

    def create_with_bytes(
        self, owner: str, base_url: str, data: bytes, content_type: str, filename: str
    ) -> FileRecord:
        """Store an app's output file, uploaded at creation."""
        record = self.create(owner, base_url, filename, content_type, len(data), None)
        self._store(record, data)
        self.evict()
        return record

    def owned(self, owner: str, limit: int) -> list[FileRecord]:
        """The owner's most recent files, newest first."""
        return list(islice(reversed(self._by_owner.get(owner, {}).values()), limit))

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
        """Store an upload's bytes; FileGone if the record left the store meanwhile."""
        if len(data) > self.max_upload_bytes:
            raise FileTooLarge(f"{len(data)} bytes exceed the cap of {self.max_upload_bytes}")
        if self.alter_uploads and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self._store(record, data)
        self.evict()

    def _store(self, record: FileRecord, data: bytes) -> None:
        # An evicted record's bytes would be counted with nothing left to uncount them later.
        if self._by_id.get(record.id) is not record:
            raise FileGone(f"file {record.id} was evicted or deleted during its upload")
        delta = len(data) - (len(record.data) if record.data is not None else 0)
        record.data = data
        record.updated = time.time()
        self._bytes_of[record.owner] += delta
        self._total_bytes += delta

    def delete(self, file_id: str) -> None:
        record = self._by_id.pop(file_id, None)
        if record is None:
            return
        self._by_token.pop(record.token, None)
        owned = self._by_owner[record.owner]
        del owned[file_id]
        size = len(record.data) if record.data is not None else 0
        self._total_bytes -= size
        self._bytes_of[record.owner] -= size
        if not owned:
            del self._by_owner[record.owner]
            del self._bytes_of[record.owner]

    def evict(self, now: float | None = None) -> int:
        """Drop files past their age, their key's quota, then the global bounds; return how many."""
        now = time.time() if now is None else now
        dropped = 0
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            if now - oldest.created <= self.retention_seconds:
                break
            self.delete(oldest.id)
            dropped += 1
        for owner in list(self._by_owner):
            while owner in self._by_owner and (
                    self.count_of(owner) > self.max_files_per_key
                    or self.bytes_of(owner) > self.max_bytes_per_key):
                self.delete(next(iter(self._by_owner[owner])))
                dropped += 1
        # Past a global bound the biggest holder pays, never a key that holds less.
        while len(self._by_id) > self.max_files:
            owner = max(self._by_owner, key=self.count_of)
            self.delete(next(iter(self._by_owner[owner])))
            dropped += 1
        while self._total_bytes > self.max_total_bytes:
            owner = max(self._by_owner, key=self.bytes_of)
            self.delete(next(iter(self._by_owner[owner])))
            dropped += 1
        return dropped
