from __future__ import annotations

import ipaddress

import pytest

from evalcluster.errors import SpecError
from evalcluster.providers.netguard import NetworkPolicy, check_url


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


# --- the strict policy of providers defined by a submitted suite -----------------------------

STRICT = NetworkPolicy()


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.255.0.9", "::1", "10.0.0.1", "172.16.5.5", "172.31.255.255",
     "192.168.1.1", "fc00::1", "fd12:3456::1", "169.254.169.254", "fe80::1", "fe80::1%eth0",
     "100.64.0.1", "100.127.255.255", "100.100.100.200", "0.0.0.0", "0.1.2.3", "::",
     "224.0.0.1", "239.255.255.250", "ff02::1", "240.0.0.1", "255.255.255.255",
     "192.0.2.1", "198.18.0.1", "2001:db8::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "::ffff:169.254.169.254", "::127.0.0.1", "2002:7f00:1::", "2002:a00:1::",
     "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2001::1", "fec0::1",
     "fd00:ec2::254", "not-an-ip", "2130706433", ""],
)  # fmt: skip
def test_strict_policy_refuses_every_non_global_address(address: str) -> None:
    assert not STRICT.allows_address(address)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
     "2002:808:808::1", "64:ff9b::808:808", "100.63.255.255", "100.128.0.1", "172.32.0.1"],
)  # fmt: skip
def test_strict_policy_allows_global_unicast(address: str) -> None:
    assert STRICT.allows_address(address)


def test_extra_networks_are_allowed_but_metadata_stays_refused() -> None:
    policy = NetworkPolicy.from_cidrs(["10.20.0.0/16", "127.0.0.1/32", "169.254.0.0/16"])
    assert policy.extra_allowed[0] == ipaddress.ip_network("10.20.0.0/16")
    assert policy.allows_address("10.20.3.4") and policy.allows_address("127.0.0.1")
    assert policy.allows_address("::ffff:127.0.0.1")  # the kernel connects to 127.0.0.1
    assert not policy.allows_address("10.21.0.1") and not policy.allows_address("127.0.0.2")
    assert not policy.allows_address("169.254.169.254")
    assert policy.allows_host("metadata.google.internal") is False
    with pytest.raises(ValueError):
        NetworkPolicy.from_cidrs(["10.0.0.0/33"])


def _strict(url: str, resolves_to: list[str], policy: NetworkPolicy = STRICT) -> None:
    policy.check_url(url, provider="p", field="providers.p.base_url",
                     resolve=lambda host, port: resolves_to)  # fmt: skip


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8265/", "http://[::ffff:127.0.0.1]/", "http://2130706433/",
     "http://0x7f.1/", "http://127.1/", "http://0177.0.0.1/", "http://[::1]/",
     "http://169.254.169.254/latest", "http://metadata.google.internal/",
     "http://METADATA.goog./", "http://10.0.0.1/", "http://[fc00::1]/"],
)  # fmt: skip
def test_strict_check_refuses_non_public_hosts_whatever_the_resolver_says(url: str) -> None:
    with pytest.raises(SpecError, match="public") as info:
        _strict(url, ["93.184.216.34"])
    assert info.value.field == "providers.p.base_url"


def test_strict_check_refuses_a_name_with_any_non_public_address() -> None:
    _strict("https://api.example.com/v1", ["93.184.216.34", "2606:2800::1"])
    with pytest.raises(SpecError, match="public") as info:
        _strict("https://api.example.com/v1", ["93.184.216.34", "10.0.0.5"])
    assert "10.0.0.5" not in str(info.value)  # no internal address in the message
    _strict("https://nowhere.invalid/v1", [])  # checked again at connect time
    _strict("http://farm.internal/v1", ["10.20.0.7"], NetworkPolicy.from_cidrs(["10.20.0.0/16"]))


def test_strict_check_still_wants_http() -> None:
    with pytest.raises(SpecError, match="not an http"):
        _strict("file:///etc/passwd", [])


def test_real_resolution_of_localhost_is_refused_by_the_strict_policy() -> None:
    with pytest.raises(SpecError):
        STRICT.check_url("http://localhost:8000/v1", provider="p", field="f")
