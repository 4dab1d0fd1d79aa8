"""Where a submitted suite's dataset may come from: the tenant's uploads and the operator's roots.

Uploaded datasets (``POST /v1/datasets``) live in the store, content-addressed::

    tenants/<tenant>/datasets/<name>.json           name -> sha256, format, size, who, when
    tenants/<tenant>/datasets/data/<sha256>.<fmt>   the bytes, written once

A suite names one as ``dataset: {path: "dataset:<name>"}``. Any other path must be a file under
one of the configured roots (``datasets.roots``): a local folder, compared after resolving
symlinks and ``..``, or an ``s3://bucket/prefix/`` with no ``.``/``..``/empty segments. Every
refusal reads the same ("no such dataset") whether the file exists or not, and no message names
a server path or quotes the file: a key holder learns nothing about the server's files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from evalcluster.errors import NotFoundError, SpecError
from evalcluster.store.fs import Store
from evalcluster.store.layout import check_name, tenant_prefix
from evalcluster.suite.datasets import DatasetRef, infer_format

UPLOAD_SCHEME = "dataset:"


class UploadedDataset(BaseModel):
    """The record of one uploaded dataset (its bytes are under ``data/<sha256>.<format>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str
    format: str
    bytes: int
    uploaded_at: str
    uploaded_by: str  # the key id (a digest prefix), never the key

    @property
    def reference(self) -> str:
        """What a suite writes as ``dataset.path``."""
        return f"{UPLOAD_SCHEME}{self.name}"


def datasets_prefix(tenant: str) -> str:
    return f"{tenant_prefix(tenant)}datasets/"


def record_key(tenant: str, name: str) -> str:
    return f"{datasets_prefix(tenant)}{check_name('dataset name', name)}.json"


def data_key(tenant: str, sha256: str, fmt: str) -> str:
    return f"{datasets_prefix(tenant)}data/{sha256}.{fmt}"


def read_record(store: Store, tenant: str, name: str) -> UploadedDataset | None:
    try:
        raw = store.get(record_key(tenant, name))
    except NotFoundError:
        return None
    return UploadedDataset.model_validate(json.loads(raw))


def list_records(store: Store, tenant: str) -> list[UploadedDataset]:
    """The tenant's uploaded datasets, by name."""
    prefix = datasets_prefix(tenant)
    out = []
    for key in store.list(prefix):
        rest = key[len(prefix) :]
        if "/" in rest or not rest.endswith(".json"):
            continue
        found = read_record(store, tenant, rest[: -len(".json")])
        if found is not None:
            out.append(found)
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class TenantDatasets:
    """The dataset resolver of one tenant's submitted suites (a `spec.rules.DatasetResolver`).

    ``dataset:<name>`` is looked up in this tenant's uploads only. Any other path is located
    first and its format inferred after, so every refusal reads alike. Local roots are resolved
    here too (a root given as a symlink, or relative), the candidate is resolved (symlinks,
    ``..``) and must lie under the root it was joined to; the store's own folder (or ``s3://``
    prefix) is never a dataset even when a root contains it: it holds every tenant's uploads
    and results.
    """

    store: Store
    tenant: str
    roots: tuple[str, ...]
    endpoint_url: str | None = None

    def resolve(self, path: str, declared_format: str | None) -> DatasetRef:
        if not isinstance(path, str) or not path or "\x00" in path:
            raise _no_such(path)
        if path.startswith(UPLOAD_SCHEME):
            return self._uploaded(path.removeprefix(UPLOAD_SCHEME), declared_format, path)
        if path.startswith("s3://"):
            located = self._s3(path)
        elif "://" in path:
            raise _no_such(path)
        else:
            located = self._local(path)
        fmt = infer_format(path, declared_format)
        return DatasetRef(located, fmt, label=path, endpoint_url=self.endpoint_url)

    def _uploaded(self, name: str, declared_format: str | None, shown: str) -> DatasetRef:
        try:
            record = read_record(self.store, self.tenant, name)
        except Exception:  # noqa: BLE001 - StoreError for an invalid name: same answer
            record = None
        if record is None:
            raise _no_such(shown)
        if declared_format is not None and declared_format != record.format:
            raise SpecError(
                f"{shown!r} was uploaded as {record.format}, not {declared_format}",
                field="dataset.format",
            )
        uri = self.store.full_uri(data_key(self.tenant, record.sha256, record.format))
        return DatasetRef(uri, record.format, label=shown, endpoint_url=self.endpoint_url)

    def _s3(self, path: str) -> str:
        segments = path.removeprefix("s3://").split("/")
        if any(s in ("", ".", "..") for s in segments) or "\\" in path or "%" in path:
            raise _no_such(path)
        store_root = self.store.full_uri().rstrip("/") + "/"
        if path.startswith(store_root):
            raise _no_such(path)
        for root in self.roots:
            if not root.startswith("s3://"):
                continue
            prefix = root if root.endswith("/") else root + "/"
            if path.startswith(prefix):
                return path
        raise _no_such(path)

    def _local(self, path: str) -> str:
        written = Path(path)
        store_root = _local_store_root(self.store)
        for root_text in self.roots:
            if root_text.startswith("s3://"):
                continue
            try:
                root = Path(root_text).resolve()
                candidate = (written if written.is_absolute() else root / written).resolve()
                if not candidate.is_relative_to(root):
                    continue
                if store_root is not None and candidate.is_relative_to(store_root):
                    continue
                if candidate.is_file():
                    return str(candidate)
            except (OSError, RuntimeError, ValueError):  # loops, names too long: not found
                continue
        raise _no_such(path)


def _local_store_root(store: Store) -> Path | None:
    """The store's folder, symlinks resolved; None for a store that is not a local folder."""
    uri = store.full_uri()
    if "://" in uri:
        return None
    try:
        return Path(uri).resolve()
    except (OSError, RuntimeError):
        return Path(uri)


def _no_such(path: Any) -> SpecError:
    return SpecError(
        f"no such dataset {str(path)[:200]!r}: use an uploaded dataset ('dataset:<name>', see "
        "POST /v1/datasets) or a file under the service's dataset roots",
        field="dataset.path",
    )
