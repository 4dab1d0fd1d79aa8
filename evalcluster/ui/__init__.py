"""The workbench: a web page to watch, read, compare and review evaluations.

The page itself is static (``static/``: one HTML shell, an ES module, a style sheet), served at
``/ui`` by `evalcluster.serve.routes_ui`; everything it shows comes from authenticated JSON
routes, computed by the modules here over the lake:

- `queries`: a run's rows as a table: filtered, paged samples, one sample, a run's summary;
- `labels`: human verdicts, appended to the lake, and what they change (agreement, corrected
  estimates);
- `compare`: two runs or two targets of a run, sample by sample.
"""
