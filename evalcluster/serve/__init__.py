"""The HTTP service on Ray Serve (FastAPI ingress): suites, runs, live events, results.

`evalcluster.serve.app:build_app` is the Serve application builder; `evalcluster serve` calls
`evalcluster.serve.launch.serve_forever`. See docs/http-api.md.
"""
