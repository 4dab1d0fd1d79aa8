"""The result rows: their Parquet schema, committing a shard once, and reading runs back.

One row per sample x target x epoch. A shard is serialized whole in memory and written with one
`Store.put_if_absent`, so a shard is committed exactly once and never seen half-written.

``run_id`` and ``target`` are the hive partition folders (see `layout`), not columns of the
files; partition values are checked to read as strings (`layout.check_partition_value`), so the
whole ``runs/`` folder reads as one table with every column through::

    read_runs("<store>")  # a pyarrow.Table, whatever scorers each run had
    pyarrow.dataset.dataset("<store>/runs", format="parquet", partitioning="hive", schema=...)
    duckdb: SELECT * FROM read_parquet('<store>/runs/*/*/*.parquet', hive_partitioning=true,
                                       union_by_name=true)
    pyarrow.dataset.dataset("bucket/prefix/runs", filesystem=pyarrow.fs.S3FileSystem(...), ...)

Runs with different scorers have different ``score_*`` columns. Left to themselves, pyarrow
(and so ``pandas.read_parquet``) take the schema of the first file they find and silently drop
the other runs' score columns, and DuckDB fails on a column missing from its first file. So:
`read_runs` (every run as one table, score columns unioned), or pass ``schema=`` (the union of
the files' schemas, or `runs_dataset`), and give DuckDB ``union_by_name=true``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from numbers import Integral, Real
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.rows import (
    ADDED_COLUMNS,
    INT32,
    PARTITION_COLUMNS,
    SCORE_PREFIX,
    base_column_types,
    score_column,
)
from evalcluster.rows import scorer_names as scorers_in
from evalcluster.store.fs import LocalStore, Store, open_store
from evalcluster.store.layout import (
    RUNS_PREFIX,
    ShardFile,
    manifest_key,
    parse_shard_key,
    run_prefix,
    shard_key,
    target_prefix,
)

__all__ = [
    "ADDED_FIELDS",
    "BASE_FIELDS",
    "commit_shard",
    "file_columns",
    "iter_result_batches",
    "list_run_ids",
    "list_shards",
    "read_results",
    "read_runs",
    "result_schema",
    "runs_dataset",
    "shard_key",
    "shard_to_parquet_bytes",
    "with_added_columns",
]

_UTC_MICROS = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: _UTC_MICROS,
}


def _arrow_field(name: str, annotation: Any) -> pa.Field:
    """The Parquet column of a `ResultRow` annotation: `X | None` is nullable, and
    ``Annotated[int, INT32]`` is 32 bits."""
    nullable = get_origin(annotation) in (Union, UnionType)
    if nullable:
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Annotated:
        annotation, *marks = get_args(annotation)
        if INT32 in marks:
            return pa.field(name, pa.int32(), nullable=nullable)
    return pa.field(name, _ARROW_TYPES[annotation], nullable=nullable)


BASE_FIELDS: tuple[pa.Field, ...] = tuple(
    _arrow_field(name, annotation) for name, annotation in base_column_types().items()
)
"""The columns every result file has, in order (`rows.ResultRow`); ``score_<name>`` columns
follow. Files written before `ADDED_FIELDS` existed lack them: readers give them as null."""

ADDED_FIELDS = ADDED_COLUMNS


def result_schema(scorer_names: Sequence[str]) -> pa.Schema:
    """The schema of a run's result rows: `BASE_FIELDS`, then ``score_<name>`` per scorer."""
    if isinstance(scorer_names, str):
        raise StoreError("scorer_names must be a sequence of names, not one string")
    seen: set[str] = set()
    for name in scorer_names:
        if not isinstance(name, str) or not name:
            raise StoreError(f"invalid scorer name {name!r}")
        if name in seen:
            raise StoreError(f"scorer {name!r} is listed twice")
        seen.add(name)
    scores = [pa.field(score_column(name), pa.float64()) for name in scorer_names]
    return pa.schema([*BASE_FIELDS, *scores])


# -- writing ------------------------------------------------------------------------------------


def _value_checker(arrow_type: pa.DataType) -> Callable[[Any], str | None]:
    """A function saying why a (non-null) value cannot be stored as `arrow_type`, or None."""

    def wrong(value: Any) -> str:
        return f"expected {arrow_type}, got {type(value).__name__}"

    # The `type(v) is ...` tests come first: they are exact for the common values and skip the
    # much slower ABC checks (Real, Integral), which run for every value of every shard.
    if pa.types.is_string(arrow_type):
        return lambda v: None if type(v) is str or isinstance(v, str) else wrong(v)
    if pa.types.is_boolean(arrow_type):
        return lambda v: None if isinstance(v, bool) else wrong(v)
    if pa.types.is_floating(arrow_type):
        return lambda v: (
            None
            if type(v) is float or (isinstance(v, Real) and not isinstance(v, bool))
            else wrong(v)
        )
    if pa.types.is_integer(arrow_type):
        low, high = -(2 ** (arrow_type.bit_width - 1)), 2 ** (arrow_type.bit_width - 1)

        def check_int(v: Any) -> str | None:
            if type(v) is not int and (not isinstance(v, Integral) or isinstance(v, bool)):
                return wrong(v)
            return None if low <= v < high else f"{v} does not fit {arrow_type}"

        return check_int
    if pa.types.is_timestamp(arrow_type):

        def check_time(v: Any) -> str | None:
            if not isinstance(v, datetime):
                return wrong(v)
            return None if v.tzinfo is not None else "a naive datetime (needs a timezone)"

        return check_time
    raise AssertionError(f"no check for {arrow_type}")  # the schema has no other types


def rows_to_table(rows: Sequence[Mapping[str, Any]], scorer_names: Sequence[str]) -> pa.Table:
    """Validate `rows` against `result_schema(scorer_names)` and build the Arrow table.

    Raises StoreError naming the row and column of the first missing, unknown, null (where not
    nullable) or wrongly typed value.
    """
    schema = result_schema(scorer_names)
    names = set(schema.names)
    for i, row in enumerate(rows):
        if row.keys() != names:
            unknown = sorted(row.keys() - names)
            if unknown:
                raise StoreError(f"result row {i}: unknown column {unknown[0]!r}")
            missing = [n for n in schema.names if n not in row]
            raise StoreError(f"result row {i}: missing column {missing[0]!r}")
    columns = []
    for field in schema:
        values = [row[field.name] for row in rows]
        check = _value_checker(field.type)
        for i, value in enumerate(values):
            if value is None:
                if not field.nullable:
                    raise StoreError(f"result row {i}: column {field.name!r} must not be null")
            elif problem := check(value):
                raise StoreError(f"result row {i}: column {field.name!r}: {problem}")
        try:
            columns.append(pa.array(values, type=field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            raise StoreError(f"result column {field.name!r}: {e}") from e
    return pa.Table.from_arrays(columns, schema=schema)


def shard_to_parquet_bytes(rows: Sequence[Mapping[str, Any]], scorer_names: Sequence[str]) -> bytes:
    """The whole Parquet file (zstd) for `rows`, built in memory; validated as `rows_to_table`."""
    table = rows_to_table(rows, scorer_names).drop_columns(list(PARTITION_COLUMNS))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def commit_shard(
    store: Store,
    run_id: str,
    target: str,
    index: int,
    rows: Sequence[Mapping[str, Any]],
    scorer_names: Sequence[str],
) -> bool:
    """Write shard `index` of `target` once. True if this call committed it, False if an
    earlier attempt already had (its content is kept). Nothing is written if `rows` is invalid.
    """
    key = shard_key(run_id, target, index)
    for i, row in enumerate(rows):
        if row.get("run_id") != run_id or row.get("target") != target:
            raise StoreError(
                f"result row {i}: run_id/target {row.get('run_id')!r}/{row.get('target')!r} "
                f"do not match shard {key}"
            )
    return store.put_if_absent(key, shard_to_parquet_bytes(rows, scorer_names))


# -- reading ------------------------------------------------------------------------------------


def list_run_ids(store: Store) -> list[str]:
    """The ids of every run with a folder in the store, sorted."""
    return [
        name[len("run_id=") :]
        for name in store.list_dirs(RUNS_PREFIX)
        if name.startswith("run_id=") and len(name) > len("run_id=")
    ]


def list_shards(store: Store, run_id: str, *, target: str | None = None) -> list[ShardFile]:
    """The committed shards of a run (of one target), ordered by target, then shard index."""
    prefix = target_prefix(run_id, target) if target is not None else run_prefix(run_id)
    shards = [s for s in map(parse_shard_key, store.list(prefix)) if s is not None]
    return sorted(shards, key=lambda s: (s.target, s.index))


def _shards_of_known_run(store: Store, run_id: str, target: str | None) -> list[ShardFile]:
    shards = list_shards(store, run_id, target=target)
    if not shards and not store.exists(manifest_key(run_id)):
        raise NotFoundError(f"no run {run_id!r} in {store.uri}")
    return shards


def _open(store: Store, shard: ShardFile) -> pq.ParquetFile:
    filesystem, path = store.arrow_filesystem_and_path(shard.key)
    try:
        return pq.ParquetFile(filesystem.open_input_file(path))
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read {store.full_uri(shard.key)}: {e}") from e


def _try_open(store: Store, shard: ShardFile) -> pq.ParquetFile | StoreError:
    try:
        return _open(store, shard)
    except StoreError as e:
        return e


_MAX_OPEN_WINDOW = 16


def _opened(store: Store, shards: Sequence[ShardFile]) -> Iterator[pq.ParquetFile]:
    """The shards' files, opened (footer read) in order.

    On S3, opens a window of files at once, from 1 file doubling to 16, so a deep page costs a
    round trip per window instead of per file while a first page opens only what it needs.
    A file that cannot be opened raises only when the caller reaches it.
    """
    if isinstance(store, LocalStore):  # opening a local file costs no round trip
        for shard in shards:
            yield _open(store, shard)
        return
    window, start = 1, 0
    with ThreadPoolExecutor(max_workers=_MAX_OPEN_WINDOW) as pool:
        while start < len(shards):
            chunk = shards[start : start + window]
            for future in [pool.submit(_try_open, store, shard) for shard in chunk]:
                result = future.result()
                if isinstance(result, StoreError):
                    raise result
                yield result
            start += len(chunk)
            window = min(window * 2, _MAX_OPEN_WINDOW)


def file_columns(
    parquet: pq.ParquetFile, columns: Sequence[str] | None, where: str
) -> list[str] | None:
    """The file columns to read for `columns` (the partition columns come from the path, and
    the `ADDED_FIELDS` a file predates from `with_added_columns`); StoreError names a column
    the file does not have."""
    if columns is None:
        return None
    columns = [c for c in columns if c not in PARTITION_COLUMNS]
    available = set(parquet.schema_arrow.names)
    unknown = [c for c in columns if c not in available and c not in ADDED_FIELDS]
    if unknown:
        raise StoreError(f"no column {unknown[0]!r} in the results of {where}")
    return [c for c in columns if c in available]  # an older file's missing ADDED_FIELDS: null


_BASE_BY_NAME = {f.name: f for f in BASE_FIELDS}


def with_added_columns(table: pa.Table, columns: Sequence[str] | None) -> pa.Table:
    """An older file's table with the `ADDED_FIELDS` it lacks as null columns, where
    `result_schema` has them (or wherever `columns` selects them)."""
    wanted = ADDED_FIELDS if columns is None else ADDED_FIELDS.intersection(columns)
    missing = [f for f in BASE_FIELDS if f.name in wanted and f.name not in table.column_names]
    if not missing:
        return table
    position = next(
        (i for i, name in enumerate(table.column_names) if name.startswith(SCORE_PREFIX)),
        table.num_columns,
    )
    for offset, f in enumerate(missing):
        field = pa.field(f.name, f.type)  # nullable: the file never had it
        table = table.add_column(position + offset, field, pa.nulls(table.num_rows, f.type))
    return table


def _with_partitions(
    table: pa.Table, run_id: str, target: str, columns: Sequence[str] | None
) -> pa.Table:
    """Put the partition columns back where `result_schema` has them (or as `columns` asks)."""
    n = table.num_rows
    if columns is None or "run_id" in columns:
        table = table.add_column(
            0, pa.field("run_id", pa.string(), nullable=False), pa.array([run_id] * n, pa.string())
        )
    if columns is None or "target" in columns:
        position = min(3, table.num_columns) if columns is None else table.num_columns
        table = table.add_column(
            position,
            pa.field("target", pa.string(), nullable=False),
            pa.array([target] * n, pa.string()),
        )
    table = with_added_columns(table, columns)
    return table if columns is None else table.select(list(columns))


def _read_rows(
    parquet: pq.ParquetFile, start: int, stop: int, columns: list[str] | None
) -> pa.Table:
    """Rows [start, stop) of one file, reading only the row groups that hold them."""
    groups, first_row, row = [], None, 0
    for g in range(parquet.metadata.num_row_groups):
        n = parquet.metadata.row_group(g).num_rows
        if row + n > start and row < stop:
            groups.append(g)
            first_row = row if first_row is None else first_row
        row += n
    if not groups:
        return parquet.schema_arrow.empty_table().select(columns or parquet.schema_arrow.names)
    table = parquet.read_row_groups(groups, columns=columns)
    return table.slice(start - first_row, stop - start)


def read_results(
    store: Store,
    run_id: str,
    *,
    target: str | None = None,
    columns: Sequence[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> pa.Table:
    """Rows `offset` to `offset + limit` of a run (of one target), ordered by target, shard, row.

    Only the footers of the files before the page are read (for their row counts, a window of
    files at a time), and only the row groups that hold the page. Raises NotFoundError if the
    run does not exist and StoreError naming an unknown column.
    """
    if offset < 0 or (limit is not None and limit < 0):
        raise StoreError(f"invalid page offset={offset} limit={limit}: must be >= 0")
    shards = _shards_of_known_run(store, run_id, target)
    where = f"run {run_id!r}"
    skip, remaining = offset, math.inf if limit is None else limit
    tables: list[pa.Table] = []
    with contextlib.closing(_opened(store, shards if remaining > 0 else [])) as files:
        for shard, parquet in zip(shards, files, strict=False):
            selected = file_columns(parquet, columns, where)
            rows = parquet.metadata.num_rows
            if skip >= rows:
                skip -= rows
                continue
            stop = int(min(rows, skip + remaining))
            page = _read_rows(parquet, skip, stop, selected)
            tables.append(_with_partitions(page, run_id, shard.target, columns))
            remaining -= stop - skip
            skip = 0
            if remaining <= 0:
                break
    if not tables:
        return _empty(shards, store, columns, where, run_id)
    return pa.concat_tables(tables, promote_options="default")


def _empty(
    shards: list[ShardFile],
    store: Store,
    columns: Sequence[str] | None,
    where: str,
    run_id: str,
) -> pa.Table:
    if shards:  # a page past the end: keep the run's own schema
        parquet = _open(store, shards[0])
        selected = file_columns(parquet, columns, where)
        empty = parquet.schema_arrow.empty_table()
        empty = empty.select(selected if selected is not None else empty.column_names)
        return _with_partitions(empty, run_id, shards[0].target, columns)
    schema = result_schema([])
    if columns is None:
        return schema.empty_table()
    fields = []
    for name in columns:
        if name in schema.names:
            fields.append(schema.field(name))
        elif name.startswith(SCORE_PREFIX):
            fields.append(pa.field(name, pa.float64()))
        else:
            raise StoreError(f"no column {name!r} in the results of {where}")
    return pa.schema(fields).empty_table()


def iter_result_batches(
    store: Store,
    run_id: str,
    columns: Sequence[str] | None = None,
    *,
    target: str | None = None,
    batch_size: int = 1024,
) -> Iterator[pa.RecordBatch]:
    """Stream a run's rows as record batches, in `read_results` order, one file open at a time."""
    shards = _shards_of_known_run(store, run_id, target)
    with contextlib.closing(_opened(store, shards)) as files:
        for shard, parquet in zip(shards, files, strict=False):
            selected = file_columns(parquet, columns, f"run {run_id!r}")
            try:
                for batch in parquet.iter_batches(batch_size=batch_size, columns=selected):
                    table = _with_partitions(
                        pa.Table.from_batches([batch]), run_id, shard.target, columns
                    )
                    yield from table.to_batches()
            except (OSError, pa.ArrowException) as e:
                raise StoreError(f"cannot read {store.full_uri(shard.key)}: {e}") from e


def runs_dataset(store: Store, scorer_names: Sequence[str] = ()) -> Any:
    """Every run in the store as one hive-partitioned pyarrow dataset with the schema
    `result_schema(scorer_names)`: list the union of the runs' scorers; scores a run lacks
    read as null. (Left to itself pyarrow takes the schema of the first file it finds.)
    See `read_runs` for the union found from the files themselves.
    """
    return _runs_dataset(store, result_schema(scorer_names))


def _runs_dataset(store: Store, schema: pa.Schema | None) -> Any:
    partitions = pa.schema([("run_id", pa.string()), ("target", pa.string())])
    return hive_dataset(store, RUNS_PREFIX, partitions, schema, what="runs")


def hive_dataset(
    store: Store, prefix: str, partitions: pa.Schema, schema: pa.Schema | None, *, what: str
) -> Any:
    """The Parquet files under `prefix` as one hive-partitioned pyarrow dataset: NotFoundError
    when there are none, StoreError naming `what` when they cannot be read."""
    filesystem, path = store.arrow_filesystem_and_path(prefix.rstrip("/"))
    import pyarrow.dataset as ds  # imports pandas: kept off the shard tasks' start-up

    try:
        return ds.dataset(
            path,
            filesystem=filesystem,
            format="parquet",
            partitioning=ds.partitioning(partitions, flavor="hive"),
            schema=schema,
        )
    except FileNotFoundError as e:
        raise NotFoundError(f"no {what} in {store.uri}") from e
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read the {what} in {store.uri}: {e}") from e


def read_runs(
    store: Store | str,
    *,
    run_ids: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Every run in the store (or those in `run_ids`) as one pyarrow table, whatever scorers
    each run had: the schema is `BASE_FIELDS` (``run_id`` and ``target`` included), then the
    union of the files' ``score_*`` columns in the order first met; a score a run lacks reads
    as null. ``read_runs("evalstore").to_pandas()`` is the pandas frame.

    `store` is a `Store` or a URI for `open_store` (a folder, ``s3://bucket/prefix``).
    Every file's footer is read to find the union (on S3, 16 requests at a time).
    Raises NotFoundError if the store has no runs folder, StoreError on an unreadable file,
    an unknown column or a column whose type differs between files.
    """
    if isinstance(store, str):
        store = open_store(store)
    if isinstance(run_ids, str):
        raise StoreError("run_ids must be a sequence of run ids, not one string")
    import pyarrow.dataset as ds

    dataset = _runs_dataset(store, None)
    wanted = None if run_ids is None else ds.field("run_id").isin(list(run_ids))
    try:
        fragments = list(dataset.get_fragments(filter=wanted))
        if isinstance(store, LocalStore):
            schemas = [fragment.physical_schema for fragment in fragments]
        else:  # a round trip per footer: a window of them at once
            with ThreadPoolExecutor(max_workers=_MAX_OPEN_WINDOW) as pool:
                schemas = list(pool.map(lambda fragment: fragment.physical_schema, fragments))
        scores = list(
            dict.fromkeys(
                name for schema in schemas for name in schema.names if name.startswith(SCORE_PREFIX)
            )
        )
        base = result_schema(scorers_in(scores))
        schema = pa.unify_schemas([base, *schemas])
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read the runs in {store.uri}: {e}") from e
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise StoreError(f"no column {unknown[0]!r} in the runs of {store.uri}")
    try:
        return _runs_dataset(store, schema).to_table(
            columns=None if columns is None else list(columns), filter=wanted
        )
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"cannot read the runs in {store.uri}: {e}") from e
