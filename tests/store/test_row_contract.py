"""The Parquet schema of the result files is derived from `rows.ResultRow`, so a column is
named and typed in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pyarrow as pa
import pytest

from evalcluster.rows import ADDED_COLUMNS, BASE_COLUMNS, INT32, PARTITION_COLUMNS
from evalcluster.store.lake import ADDED_FIELDS, BASE_FIELDS, _arrow_field, result_schema


def test_the_file_schema_has_the_result_row_columns_in_order_then_the_scores():
    assert result_schema(["exact"]).names == [*BASE_COLUMNS, "score_exact"]
    assert [f.name for f in BASE_FIELDS] == list(BASE_COLUMNS)
    assert ADDED_FIELDS == ADDED_COLUMNS and set(BASE_COLUMNS) >= ADDED_COLUMNS
    assert set(PARTITION_COLUMNS) <= set(BASE_COLUMNS)


@pytest.mark.parametrize(
    ("annotation", "arrow_type", "nullable"),
    [
        (str, pa.string(), False),
        (str | None, pa.string(), True),
        (int, pa.int64(), False),
        (Annotated[int, INT32], pa.int32(), False),
        (Annotated[int, INT32] | None, pa.int32(), True),
        (float, pa.float64(), False),
        (bool, pa.bool_(), False),
        (datetime, pa.timestamp("us", tz="UTC"), False),
    ],
)
def test_each_annotation_maps_to_its_parquet_type(annotation, arrow_type, nullable):
    field = _arrow_field("c", annotation)
    assert field.type == arrow_type
    assert field.nullable is nullable


def test_an_annotation_with_no_parquet_type_is_refused():
    with pytest.raises(KeyError):
        _arrow_field("c", bytes)
