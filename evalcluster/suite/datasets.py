"""Reading evaluation datasets (JSONL, CSV, Parquet) as a stream of record batches.

Datasets are streamed in batches so a suite of millions of samples never sits in memory whole.
Local paths and `s3://` URIs are read through pyarrow's filesystems.

`scan_dataset` reads the whole file once when a suite is loaded, so that a file a run would
fail on is refused before the run: its bytes are hashed, a JSONL or CSV file must be UTF-8
throughout and parse to the end, and the id column must hold no value twice. It also measures
the longest line: pyarrow's CSV reader needs a block larger than any one row, and the block size
found travels with the `DatasetRef` (`iter_batches` still grows it on the reader's "straddling
object" error, up to `MAX_BLOCK_BYTES`, for a reference that did not come from a scan). JSONL is
parsed a block of whole lines at a time (`_jsonl_batches`), so its memory stays one block.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from evalcluster.errors import SpecError

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_FORMATS |= {".parquet": "parquet", ".pq": "parquet"}
_BLOCK_BYTES = 4 << 20
MAX_BLOCK_BYTES = 1 << 30  # a JSONL/CSV row longer than this is refused
_ID_KEY_BYTES = 48  # a longer id is remembered by a digest when looking for duplicates
_DUPLICATES_SHOWN = 3


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
    block_size: int | None = None  # JSONL/CSV read block, above the longest row (scan_dataset)

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
    try:
        yield from _rebatch(_Batches(ref), batch_rows)
    except (pa.ArrowInvalid, OSError, UnicodeError) as exc:
        raise _read_error(ref, exc) from None


class _Batches:
    """The reader's own batches, in order. On pyarrow's "straddling object" error (a row
    longer than the read block) the file is read again with a block four times larger, up to
    `MAX_BLOCK_BYTES`, skipping the rows already yielded; `block_size` is the one that worked."""

    def __init__(self, ref: DatasetRef, columns: list[str] | None = None):
        self.ref = ref
        self.columns = columns  # parquet only: read just these
        self.block_size = ref.block_size or _BLOCK_BYTES

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        done = 0
        while True:
            skip = done
            try:
                for batch in self._read():
                    if skip:
                        if batch.num_rows <= skip:
                            skip -= batch.num_rows
                            continue
                        batch = batch.slice(skip)
                        skip = 0
                    done += batch.num_rows
                    yield batch
                return
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc) or self.block_size >= MAX_BLOCK_BYTES:
                    raise
                if self.ref.format == "jsonl":  # its reader grows its own block (_jsonl_batches)
                    raise
                self.block_size = min(self.block_size * 4, MAX_BLOCK_BYTES)

    def _read(self) -> Iterator[pa.RecordBatch]:
        fs, path = self.ref.filesystem()
        if self.ref.format == "parquet":
            with fs.open_input_file(path) as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=65536, columns=self.columns)
            return
        with fs.open_input_stream(path) as stream:
            if self.ref.format == "csv":
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(block_size=self.block_size),
                    convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
                )
                yield from reader
            else:
                yield from _jsonl_batches(stream, self.block_size)


def _jsonl_batches(stream: Any, block_size: int) -> Iterator[pa.RecordBatch]:
    """JSONL parsed one block of whole lines at a time, each block's columns held to the first
    block's (a new field or a changed type is an error, as with pyarrow's streaming reader).

    pyarrow's streaming JSON reader held about the whole file while it read (driver peak
    126 -> 170 MiB for 200,000 -> 1,000,000 rows; 102 -> 106 MiB this way, at the same speed),
    so a large suite's peak memory grew with its dataset. A row longer than `MAX_BLOCK_BYTES`
    is refused with the reader's "straddling" wording, which `_read_error` turns into a message.
    """
    schema: pa.Schema | None = None
    rest = b""
    while True:
        chunk = stream.read(block_size)
        lines = rest + chunk if rest else chunk
        if chunk:
            cut = lines.rfind(b"\n") + 1
            if not cut:
                if len(lines) > MAX_BLOCK_BYTES:
                    raise pa.ArrowInvalid("straddling object straddles two block boundaries")
                rest = lines
                continue
            lines, rest = lines[:cut], lines[cut:]
        if lines.strip():
            table = pajson.read_json(
                pa.BufferReader(lines),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(lines) + 1),
                parse_options=pajson.ParseOptions(
                    explicit_schema=schema,
                    unexpected_field_behavior="error" if schema is not None else "infer",
                ),
            )
            schema = schema or table.schema
            yield from table.to_batches()
        if not chunk:
            return


def _read_error(ref: DatasetRef, exc: BaseException, where: str = "") -> SpecError:
    """The SpecError for a reader's failure; with a label, without the reader's message."""
    if "straddl" in str(exc):
        detail = f": a row is longer than {MAX_BLOCK_BYTES >> 20} MiB"
    elif where:
        detail = f": {where}"
    else:
        detail = f": {exc}" if ref.label is None else f" (not valid {ref.format})"
    return SpecError(f"cannot read {ref.format} dataset {ref.shown}{detail}", field="dataset")


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
    return _read_bytes(ref, text=False)[0]


@dataclass(frozen=True)
class DuplicateIds:
    """Rows whose id repeats an earlier row's (rows counted from 1)."""

    column: str
    repeats: int  # rows that repeat an earlier row's id
    first: tuple[tuple[str, int, int], ...]  # (id, earlier row, row), the first few

    def message(self, ref: DatasetRef) -> str:
        rows = "row" if self.repeats == 1 else "rows"
        head = (
            f"column {self.column!r} of {ref.shown} must hold a unique id per row: "
            f"{self.repeats} duplicate id{'s' if self.repeats > 1 else ''} "
            f"({self.repeats} {rows} repeat an earlier row's id); first: "
        )
        if ref.label is None:  # a label means the file's content must not be quoted
            shown = [f"{_short(key)!r} (rows {a} and {b})" for key, a, b in self.first]
        else:
            shown = [f"row {b} repeats row {a}" for _, a, b in self.first]
        return head + ", ".join(shown)


@dataclass(frozen=True)
class DatasetScan:
    """What reading the whole dataset once found (see `scan_dataset`)."""

    sha256: str
    columns: tuple[str, ...]
    rows: int
    block_size: int | None  # JSONL/CSV: the read block that holds the longest row
    duplicate_ids: DuplicateIds | None

    def ref(self, ref: DatasetRef) -> DatasetRef:
        """`ref` reading with the block size found."""
        return replace(ref, block_size=self.block_size)


def scan_dataset(ref: DatasetRef, *, id_column: str | None = None) -> DatasetScan:
    """Read the whole dataset once, as a run will: SpecError naming it if a run could not.

    The bytes are hashed; JSONL and CSV must be UTF-8 throughout (the error gives the byte
    offset and line) and parse to the end (the error gives the line when it can find it);
    parquet is read for its schema and the id column only. Ids are compared as the samples
    carry them (`cell_to_text`), so `duplicate_ids` finds exactly the rows that would share a
    sample id; each id is kept as an Arrow string (a long one as a digest), and the check is
    one hash count over them, so a million rows cost well under a second.
    """
    text = ref.format != "parquet"
    digest, longest = _read_bytes(ref, text=text)
    if text:
        ref = replace(ref, block_size=max(_BLOCK_BYTES, -(-(longest + 2) // (1 << 20)) << 20))
    reader = _Batches(ref, columns=[id_column] if id_column else [])
    batches: Iterator[pa.RecordBatch] | _Batches = reader
    columns: tuple[str, ...] | None = None
    rows = 0
    keys: list[pa.Array] = []
    try:
        if not text:
            fs, path = ref.filesystem()
            with fs.open_input_file(path) as f:
                parquet = pq.ParquetFile(f)
                columns = tuple(parquet.schema_arrow.names)
                rows = parquet.metadata.num_rows
            if id_column not in columns:
                batches = iter(())
        for batch in batches:
            if columns is None:
                columns = tuple(batch.schema.names)
            if text:
                rows += batch.num_rows
            if id_column is not None and id_column in batch.schema.names:
                keys.append(_id_keys(batch.column(id_column)))
    except (pa.ArrowInvalid, OSError, UnicodeError) as exc:
        where = _find_bad_line(ref, rows) if text and "straddl" not in str(exc) else ""
        raise _read_error(ref, exc, where) from None
    if not rows or not columns:
        raise SpecError(f"dataset is empty: {ref.shown}", field="dataset.path")
    duplicates = _duplicates(id_column, keys) if id_column is not None and keys else None
    block_size = reader.block_size if text else None
    return DatasetScan(digest, columns, rows, block_size, duplicates)


def _read_bytes(ref: DatasetRef, *, text: bool) -> tuple[str, int]:
    """The file's SHA-256 and, with `text`, its longest line in bytes, checking that it is
    UTF-8 throughout (SpecError with the byte offset and line of the first bad byte)."""
    fs, path = ref.filesystem()
    digest = hashlib.sha256()
    offset = lines = longest = current = 0
    pending = b""  # the start of a character cut by the read
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(_BLOCK_BYTES):
            digest.update(chunk)
            if text:
                data = pending + chunk if pending else chunk
                try:
                    _, used = codecs.utf_8_decode(data, "strict", False)
                except UnicodeDecodeError as exc:
                    at = offset - len(pending) + exc.start
                    line = lines + data.count(b"\n", 0, exc.start) + 1
                    raise _not_utf8(ref, at, line) from None
                pending = data[used:]
                first = chunk.find(b"\n")
                if first < 0:
                    current += len(chunk)
                else:  # a line within the chunk is shorter than the block
                    longest = max(longest, current + first)
                    lines += chunk.count(b"\n")
                    current = len(chunk) - chunk.rfind(b"\n") - 1
            offset += len(chunk)
    if pending:
        raise _not_utf8(ref, offset - len(pending), lines + 1)
    if text and max(longest, current) + 2 > MAX_BLOCK_BYTES:
        raise SpecError(
            f"cannot read {ref.format} dataset {ref.shown}: a line is longer than "
            f"{MAX_BLOCK_BYTES >> 20} MiB",
            field="dataset",
        )
    return digest.hexdigest(), max(longest, current)


def _not_utf8(ref: DatasetRef, at: int, line: int) -> SpecError:
    return SpecError(
        f"dataset {ref.shown} is not valid UTF-8: byte {at} (line {line}); "
        f"{ref.format} datasets must be UTF-8",
        field="dataset",
    )


def _find_bad_line(ref: DatasetRef, rows_read: int) -> str:
    """Where a JSONL or CSV file stops parsing, found line by line with Python's own parsers
    from the first row the reader did not return (error path only); "" when not found.
    Says which line and what is wrong with it, never what the line holds."""
    header: int | None = None if ref.format == "csv" else 0
    row = 0
    for number, line in enumerate(_lines(ref), 1):
        if not line.strip():
            continue
        if header is None:  # a CSV's first line is its header
            header = len(next(csv.reader([line])))
            continue
        row += 1
        if row <= rows_read:
            continue
        if ref.format == "csv":
            fields = len(next(csv.reader([line])))
            if fields != header:
                return f"line {number} has {fields} fields, the header has {header}"
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            return f"line {number} is not valid JSON ({problem})"
        if not isinstance(value, dict):
            return f"line {number} is not a JSON object"
    return ""


def _lines(ref: DatasetRef) -> Iterator[str]:
    """The file's lines, decoded (it was checked to be UTF-8)."""
    fs, path = ref.filesystem()
    rest = b""
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(_BLOCK_BYTES):
            *complete, rest = (rest + chunk).split(b"\n")
            for line in complete:
                yield line.decode("utf-8", "replace")
    if rest:
        yield rest.decode("utf-8", "replace")


def _id_keys(column: pa.Array) -> pa.Array:
    """The ids as the samples carry them (`cell_to_text`), a long one as a digest."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind):
        keys = column.cast(pa.large_string())
        if keys.null_count:
            keys = pc.fill_null(keys, pa.scalar("", pa.large_string()))
    else:
        keys = pa.array([cell_to_text(v) for v in column.to_pylist()], pa.large_string())
    longest = pc.max(pc.binary_length(keys)).as_py()
    if longest is not None and longest > _ID_KEY_BYTES:
        keys = pa.array([_key(v) for v in keys.to_pylist()], pa.large_string())
    return keys


def _key(value: str) -> str:
    """`value`, or when long its start and a digest: at least 51 bytes, so never equal to a
    short id kept as it is."""
    if len(value.encode()) <= _ID_KEY_BYTES:
        return value
    return value[:16] + "\u2026" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _short(key: str) -> str:
    return key.split("\u2026")[0] + "..." if len(key.encode()) > _ID_KEY_BYTES else key


def _duplicates(column: str, chunks: list[pa.Array]) -> DuplicateIds | None:
    keys = pa.chunked_array(chunks, pa.large_string())
    distinct = len(pc.unique(keys))
    if distinct == len(keys):
        return None
    seen: dict[str, int] = {}
    first: list[tuple[str, int, int]] = []
    for row, key in enumerate(keys.to_pylist(), 1):
        earlier = seen.setdefault(key, row)
        if earlier != row:
            first.append((key, earlier, row))
            if len(first) == _DUPLICATES_SHOWN:
                break
    return DuplicateIds(column, len(keys) - distinct, tuple(first))


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
