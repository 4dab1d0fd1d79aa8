"""The PromQL metric-name extractor the other infra tests rely on."""

from __future__ import annotations

from .promql import base_metric, metric_names


def test_metric_names_skips_functions_keywords_labels_and_strings():
    expr = (
        'histogram_quantile(0.95, sum by (provider, le) (rate(ray_a_bucket{provider=~"x|y",'
        ' outcome!="ok"}[5m]))) / on (provider) group_left ignoring (le) max without (job)'
        " (ray_b offset 10m) unless ray_c > bool 0.1 and absent(ray_d)"
    )
    assert metric_names(expr) == {"ray_a_bucket", "ray_b", "ray_c", "ray_d"}


def test_metric_names_ignores_grafana_variables():
    expr = 'sum(increase(ray_x_total{run_id=~"$run_id"}[$__range]))'
    assert metric_names(expr) == {"ray_x_total"}


def test_base_metric_strips_ray_prefix_and_histogram_suffixes_only():
    assert base_metric("ray_evalcluster_request_latency_seconds_bucket") == (
        "evalcluster_request_latency_seconds"
    )
    assert base_metric("ray_evalcluster_requests_total") == "evalcluster_requests_total"
    assert base_metric("evalcluster_samples_total") == "evalcluster_samples_total"
