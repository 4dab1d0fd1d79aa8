"""``/v1/datasets``: a tenant uploads, lists, reads and deletes the datasets its suites name.

``POST /v1/datasets?name=<name>&format=jsonl|csv|parquet`` takes the file as the raw request
body (any Content-Type but ``multipart/form-data``, which is refused with 415: a form's envelope
is not the file). The body is streamed into a temporary file, hashed and counted on the way,
under its own size limit (``datasets.max_upload_bytes``, not ``max_body_bytes``); then the whole
file is read with the readers runs use (`evalcluster.suite.datasets.iter_batches`), so an upload
that is stored is one a run can read. A file that does not parse is 422 saying what is wrong
(not valid UTF-8 at byte N, expected N columns, no rows) and never quoting it: a reader's own
message repeats rows. Bytes are stored once per content (``data/<sha256>.<format>``); a name
points at them through its record, and a name uploaded again is re-pointed (the old bytes are
deleted when no other name of the tenant points at them).

Suites name an upload as ``dataset: {path: "dataset:<name>"}``, resolved in the caller's
tenant only; another tenant's names are 404 here and "no such dataset" in a suite.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from evalcluster.errors import SpecError
from evalcluster.serve.audit import record as audit
from evalcluster.serve.auth import Principal, require_principal, require_role
from evalcluster.serve.context import ServiceContext, get_context
from evalcluster.serve.datasets import (
    UploadedDataset,
    data_key,
    list_records,
    now_iso,
    read_record,
    record_key,
)
from evalcluster.serve.errors import ApiError
from evalcluster.serve.routes_suites import check_name
from evalcluster.serve.schemas import NAME_PATTERN, ErrorBody
from evalcluster.store.fs import Store
from evalcluster.suite.datasets import DatasetRef, infer_format, iter_batches

UPLOAD_PATH = "/v1/datasets"
Format = Literal["jsonl", "csv", "parquet"]
_WRITE_BYTES = 1 << 20  # the body is written to the temp file in pieces of about this size
_READ_BYTES = 1 << 20
_BATCH_ROWS = 65536
# Facts a reader's message may carry that quote nothing of the file: numbers only. (Its row
# numbers are not: they count from the start of the reader's block, not of the file.)
_SAFE_HINTS = (
    (re.compile(r"Expected (\d+) columns?, got (\d+)"), "expected {0} columns, got {1}"),
)

router = APIRouter(
    prefix=UPLOAD_PATH,
    tags=["datasets"],
    dependencies=[Depends(require_principal)],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)


class DatasetInfo(BaseModel):
    """An uploaded dataset: its record and how a suite names it."""

    name: str
    reference: str = Field(description='What a suite writes as `dataset.path` ("dataset:<name>").')
    sha256: str
    format: str
    bytes: int
    uploaded_at: str
    uploaded_by: str = Field(description="The key id (a digest prefix) that uploaded it.")

    @classmethod
    def of(cls, found: UploadedDataset) -> DatasetInfo:
        return cls(reference=found.reference, **found.model_dump())


class DatasetUploaded(DatasetInfo):
    """The answer to an upload: the record, and what the file was read as."""

    columns: list[str]
    rows: int
    replaced: bool = Field(description="Whether the name pointed at other content before.")


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]


@dataclass
class Upload:
    """A request body received into a temporary file."""

    path: str
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


@dataclass(frozen=True)
class Parsed:
    columns: list[str]
    rows: int


def upload_format(name: str, declared: str | None) -> str:
    """The format given, else the one the name's extension says; 422 naming `format`."""
    try:
        return infer_format(name, declared)
    except SpecError:
        raise ApiError(
            422,
            "set format to jsonl, csv or parquet (the name has no known extension)",
            field="format",
        ) from None


def _append(upload: Upload, handle: object, data: bytes) -> None:
    handle.write(data)  # type: ignore[attr-defined]
    upload.digest.update(data)


async def receive_body(request: Request, ctx: ServiceContext, upload: Upload, limit: int) -> None:
    """Stream the request body into `upload` (hashing it), 413 once it passes `limit`."""
    handle = await ctx.call(open, upload.path, "wb")
    try:
        pending = bytearray()
        async for chunk in request.stream():
            upload.size += len(chunk)
            if upload.size > limit:
                raise ApiError(413, f"the upload is larger than {limit} bytes")
            pending += chunk
            if len(pending) >= _WRITE_BYTES:
                await ctx.call(_append, upload, handle, bytes(pending))
                pending.clear()
        if pending:
            await ctx.call(_append, upload, handle, bytes(pending))
    finally:
        await ctx.call(handle.close)


def parse_upload(path: str, fmt: str) -> Parsed:
    """Read the whole file as a run would; 422 saying what is wrong without quoting it."""
    if fmt != "parquet":
        _check_utf8(path, fmt)
    ref = DatasetRef(path, fmt, label="the upload")
    columns: list[str] | None = None
    rows = 0
    try:
        for batch in iter_batches(ref, _BATCH_ROWS):
            if columns is None:
                columns = list(batch.schema.names)
            rows += batch.num_rows
    except (SpecError, pa.ArrowException, OSError, UnicodeError, ValueError, RecursionError) as e:
        raise ApiError(422, f"the upload is not valid {fmt}{_hint(e)}", field="body") from None
    if not columns or rows == 0:
        raise ApiError(422, f"the upload has no rows (read as {fmt})", field="body")
    if any(not c for c in columns):
        raise ApiError(422, "the upload has a column without a name", field="body")
    if len(set(columns)) != len(columns):
        raise ApiError(422, "the upload has two columns with the same name", field="body")
    return Parsed(columns, rows)


def _check_utf8(path: str, fmt: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(_READ_BYTES)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                raise ApiError(
                    422, f"the upload is not valid UTF-8 {fmt} (at byte {at})", field="body"
                ) from None
            if not block:
                return
            offset += len(block)


def _hint(exc: BaseException) -> str:
    """Numbers from the reader's message (the cause behind the loader's own error)."""
    cause: BaseException | None = exc
    for _ in range(3):
        if cause is None or isinstance(cause, (pa.ArrowException, UnicodeError)):
            break
        cause = cause.__cause__ or cause.__context__
    text = str(cause) if cause is not None else ""
    found = [
        template.format(*m.groups())
        for pattern, template in _SAFE_HINTS
        if (m := pattern.search(text))
    ]
    return f" ({'; '.join(found)})" if found else ""


def _check_quota(store: Store, principal: Principal, name: str) -> list[UploadedDataset]:
    records = list_records(store, principal.tenant)
    limit = principal.quotas.max_datasets
    if all(r.name != name for r in records) and len(records) >= limit:
        raise ApiError(
            429,
            f"tenant {principal.tenant!r} has {len(records)} datasets, its quota is {limit}: "
            "delete one (DELETE /v1/datasets/{name}) or upload under an existing name",
        )
    return records


def store_upload(
    store: Store, principal: Principal, name: str, fmt: str, upload: Upload
) -> tuple[UploadedDataset, bool]:
    """Store the bytes (once per content) and point `name` at them; the record and whether the
    name pointed at other content before. Runs under the tenant's dataset lock."""
    tenant = principal.tenant
    records = _check_quota(store, principal, name)
    sha = upload.sha256
    key = data_key(tenant, sha, fmt)
    if not store.exists(key):
        store.put_if_absent(key, Path(upload.path).read_bytes())
    found = UploadedDataset(
        name=name,
        sha256=sha,
        format=fmt,
        bytes=upload.size,
        uploaded_at=now_iso(),
        uploaded_by=principal.key_id,
    )
    store.put(record_key(tenant, name), found.model_dump_json().encode())
    previous = next((r for r in records if r.name == name), None)
    replaced = previous is not None and (previous.sha256, previous.format) != (sha, fmt)
    if replaced:
        assert previous is not None
        others = [r for r in records if r.name != name]
        _drop_unreferenced(store, tenant, previous, others)
    return found, replaced


def delete_dataset_record(store: Store, tenant: str, name: str) -> UploadedDataset:
    """Remove `name` and, unless another name points at them, its bytes; 404 if absent."""
    found = read_record(store, tenant, name)
    if found is None:
        raise ApiError(404, f"no dataset {name!r}")
    store.delete(record_key(tenant, name))
    others = [r for r in list_records(store, tenant) if r.name != name]
    _drop_unreferenced(store, tenant, found, others)
    return found


def _drop_unreferenced(
    store: Store, tenant: str, gone: UploadedDataset, others: list[UploadedDataset]
) -> None:
    if not any((r.sha256, r.format) == (gone.sha256, gone.format) for r in others):
        store.delete(data_key(tenant, gone.sha256, gone.format))


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _temp_path() -> str:
    fd, path = tempfile.mkstemp(prefix="evalcluster-upload-", suffix=".tmp")
    os.close(fd)
    return path


@router.post(
    "",
    status_code=201,
    response_model=DatasetUploaded,
    summary="Upload a dataset (the raw file as the body)",
    responses={
        413: {"model": ErrorBody, "description": "Larger than the upload limit."},
        415: {"model": ErrorBody, "description": "A multipart form; send the file itself."},
        422: {"model": ErrorBody, "description": "Bad name or format, or the file is invalid."},
        429: {"model": ErrorBody, "description": "The tenant's `max_datasets` quota is full."},
    },
)
async def upload_dataset(
    request: Request,
    name: str = Query(
        ..., pattern=NAME_PATTERN, description="The dataset's name (`dataset:<name>`)."
    ),
    format: Format | None = Query(  # noqa: A002 - the query parameter's name
        None, description="jsonl, csv or parquet; by default from the name's extension."
    ),
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> DatasetUploaded:
    """Stream the body, check it reads as `format` (UTF-8 for jsonl and csv, at least one row),
    store it and point `name` at it. Uploading a name again replaces it."""
    fmt = upload_format(name, format)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        raise ApiError(
            415,
            "send the file itself as the request body (e.g. Content-Type: "
            "application/octet-stream), not a multipart form",
        )
    await ctx.call(_check_quota, ctx.store, principal, name)  # before reading the body
    upload = Upload(await ctx.call(_temp_path))
    try:
        await receive_body(request, ctx, upload, ctx.settings.max_upload_bytes)
        if upload.size == 0:
            raise ApiError(422, "the upload is empty: send the file as the request body")
        parsed = await ctx.call(parse_upload, upload.path, fmt)
        async with ctx.dataset_lock(principal.tenant):
            found, replaced = await ctx.call(store_upload, ctx.store, principal, name, fmt, upload)
    finally:
        await ctx.call(_remove, upload.path)
    await audit(
        ctx,
        principal,
        "dataset.upload",
        dataset=name,
        sha256=found.sha256,
        format=fmt,
        bytes=found.bytes,
        replaced=replaced,
    )
    return DatasetUploaded(
        **DatasetInfo.of(found).model_dump(),
        columns=parsed.columns,
        rows=parsed.rows,
        replaced=replaced,
    )


@router.get("", response_model=DatasetList, summary="The caller's tenant's datasets")
async def list_datasets(
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> DatasetList:
    found = await ctx.call(list_records, ctx.store, principal.tenant)
    return DatasetList(datasets=[DatasetInfo.of(r) for r in found])


@router.get(
    "/{name}",
    response_model=DatasetInfo,
    summary="One dataset's record",
    responses={404: {"model": ErrorBody}},
)
async def get_dataset(
    name: str,
    principal: Principal = Depends(require_principal),
    ctx: ServiceContext = Depends(get_context),
) -> DatasetInfo:
    found = await ctx.call(read_record, ctx.store, principal.tenant, check_name(name, "dataset"))
    if found is None:
        raise ApiError(404, f"no dataset {name!r}")
    return DatasetInfo.of(found)


@router.delete(
    "/{name}",
    response_model=DatasetInfo,
    summary="Delete a dataset (its bytes too, unless another name has the same content)",
    responses={404: {"model": ErrorBody}},
)
async def delete_dataset(
    name: str,
    principal: Principal = Depends(require_role("runner")),
    ctx: ServiceContext = Depends(get_context),
) -> DatasetInfo:
    """Suites that name it stop resolving: starting a run of one answers 422."""
    check_name(name, "dataset")
    async with ctx.dataset_lock(principal.tenant):
        found = await ctx.call(delete_dataset_record, ctx.store, principal.tenant, name)
    await audit(ctx, principal, "dataset.delete", dataset=name, sha256=found.sha256)
    return DatasetInfo.of(found)
