"""Reading evaluation datasets (JSONL, CSV, Parquet) as a stream of record batches.

Datasets are streamed in batches so a suite of millions of samples never sits in memory whole.
Local paths and `s3://` URIs are read through pyarrow's filesystems.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from evalcluster.errors import SpecError

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_FORMATS |= {".parquet": "parquet", ".pq": "parquet"}
_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class DatasetRef:
    """A resolved dataset location: a URI any worker can open, and its format.

    `label` is what error messages call it when the URI must not be shown (a server path in
    the HTTP service); with a label, errors also leave out the reader's own message, which can
    quote the file's content.
    """

    uri: str
    format: str
    label: str | None = None
    endpoint_url: str | None = None  # S3 endpoint, when not the environment's

    @property
    def shown(self) -> str:
        """How messages name the dataset."""
        return self.label or self.uri

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        if self.uri.startswith("s3://"):
            endpoint = (
                self.endpoint_url
                or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL")
            )
            fs = pafs.S3FileSystem(endpoint_override=endpoint) if endpoint else pafs.S3FileSystem()
            return fs, self.uri.removeprefix("s3://")
        return pafs.LocalFileSystem(), self.uri


def infer_format(path: str, declared: str | None) -> str:
    if declared:
        return declared
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise SpecError(
            f"cannot tell the format of {path!r} from its extension; set dataset.format "
            "to jsonl, csv or parquet",
            field="dataset.format",
        )
    return _FORMATS[suffix]


def resolve_dataset(path: str, declared_format: str | None, suite_dir: Path) -> DatasetRef:
    """Find the dataset: relative paths are tried next to the suite file, then in the cwd."""
    fmt = infer_format(path, declared_format)
    if path.startswith("s3://"):
        return DatasetRef(path, fmt)
    candidates = [Path(path)] if Path(path).is_absolute() else [suite_dir / path, Path(path)]
    for candidate in candidates:
        if candidate.is_file():
            return DatasetRef(str(candidate.resolve()), fmt)
    raise SpecError(f"file not found: {path}", field="dataset.path")


def iter_batches(ref: DatasetRef, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Yield the dataset's rows in order, as record batches of at most `batch_rows` rows."""
    fs, path = ref.filesystem()
    try:
        if ref.format == "parquet":
            with fs.open_input_file(path) as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows)
            return
        with fs.open_input_stream(path) as stream:
            if ref.format == "csv":
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES),
                    convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
                )
            else:
                reader = pajson.open_json(
                    stream, read_options=pajson.ReadOptions(block_size=_BLOCK_BYTES)
                )
            yield from _rebatch(reader, batch_rows)
    except (pa.ArrowInvalid, OSError, UnicodeError) as exc:
        detail = f": {exc}" if ref.label is None else f" (not valid {ref.format})"
        raise SpecError(
            f"cannot read {ref.format} dataset {ref.shown}{detail}", field="dataset"
        ) from None


def _rebatch(reader: Any, batch_rows: int) -> Iterator[pa.RecordBatch]:
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in reader:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= batch_rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield from table.slice(0, batch_rows).to_batches(max_chunksize=batch_rows)
            rest = table.slice(batch_rows)
            pending = rest.to_batches() if rest.num_rows else []
            pending_rows = rest.num_rows
    if pending_rows:
        table = pa.Table.from_batches(pending).combine_chunks()
        yield from table.to_batches(max_chunksize=batch_rows)


def content_hash(ref: DatasetRef) -> str:
    """SHA-256 of the dataset file's bytes, streamed."""
    fs, path = ref.filesystem()
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(_BLOCK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def cell_to_text(value: Any) -> str:
    """How a dataset value appears in a prompt or as a reference answer."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
