from __future__ import annotations

import pytest

from evalcluster.errors import SpecError
from evalcluster.providers.netguard import check_url


def _check(url: str, *, allow: bool = False, resolves_to: list[str] | None = None) -> None:
    check_url(url, provider="p", field="providers.p.base_url", allow_private_network=allow,
              resolve=lambda host, port: resolves_to or [])  # fmt: skip


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data", "http://169.254.1.1:8080/v1",
     "http://[fd00:ec2::254]/latest", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/",
     "http://metadata.google.internal/computeMetadata/v1", "http://100.100.100.200/"],
)  # fmt: skip
def test_link_local_and_metadata_addresses_are_refused(url: str) -> None:
    with pytest.raises(SpecError, match="allow_private_network") as info:
        _check(url)
    assert info.value.field == "providers.p.base_url"


def test_every_resolved_address_is_checked() -> None:
    with pytest.raises(SpecError):
        _check("http://innocent.example/v1", resolves_to=["10.0.0.5", "169.254.169.254"])
    _check("http://innocent.example/v1", resolves_to=["10.0.0.5", "127.0.0.1"])


def test_real_resolution_of_localhost_is_allowed() -> None:
    check_url("http://localhost:8000/v1", provider="p", field="f")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/v1", "http://10.1.2.3/v1", "https://api.example.com/v1"]
)
def test_loopback_and_private_ranges_are_allowed(url: str) -> None:
    _check(url, resolves_to=["93.184.216.34"])


def test_allow_private_network_lifts_the_refusal() -> None:
    _check("http://169.254.169.254/", allow=True)


@pytest.mark.parametrize("url", ["ftp://host/x", "file:///etc/passwd", "localhost:8000", ""])
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(SpecError, match="not an http"):
        _check(url)
