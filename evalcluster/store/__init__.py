"""The results lake and its object store.

- `fs`: `open_store(uri)` -> `Store`, a local folder or ``s3://bucket/prefix`` with atomic writes
- `layout`: the keys of everything in the store, and which run ids and target names are valid
- `lake`: the result rows' Parquet schema, committing shards once, reading runs back in pages
- `manifest`: a run's manifest and summary
- `suites`: the registry of immutable, versioned suite files
- `cache`: the response cache
"""
