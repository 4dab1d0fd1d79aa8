from __future__ import annotations

import threading

import pytest

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import Store
from evalcluster.store.suites import (
    SuiteInfo,
    SuitePut,
    SuiteRegistry,
    SuiteVersion,
    VersionConflictError,
)

V1 = "name: arithmetic\nepochs: 1\n"
V2 = "name: arithmetic\nepochs: 2\n"


def test_versions_are_immutable_and_same_content_is_not_a_new_version(store: Store):
    suites = SuiteRegistry(store)
    assert suites.put("arithmetic", V1, "v-111") == SuitePut("v-111", True)
    assert suites.put("arithmetic", V1, "v-111") == SuitePut("v-111", False)
    with pytest.raises(VersionConflictError, match="v-111"):
        suites.put("arithmetic", V2, "v-111")
    assert suites.get("arithmetic", "v-111") == SuiteVersion("v-111", V1)
    assert store.get("suites/arithmetic/v-111.yaml") == V1.encode()


def test_latest_is_the_most_recently_created_version(store: Store):
    suites = SuiteRegistry(store)
    suites.put("arithmetic", V1, "zz-first")
    suites.put("arithmetic", V2, "aa-second")
    suites.put("arithmetic", V1, "zz-first")  # storing it again does not make it newer
    assert suites.versions("arithmetic") == ["zz-first", "aa-second"]
    assert suites.get("arithmetic") == SuiteVersion("aa-second", V2)
    assert suites.list() == [SuiteInfo("arithmetic", ["zz-first", "aa-second"], "aa-second")]


def test_hiding_a_suite_keeps_its_versions_readable_by_version(store: Store):
    suites = SuiteRegistry(store)
    suites.put("arithmetic", V1, "v1")
    suites.put("other", V2, "v9")
    suites.hide("arithmetic")
    assert [s.name for s in suites.list()] == ["other"]
    with pytest.raises(NotFoundError, match="arithmetic"):
        suites.get("arithmetic")
    assert suites.get("arithmetic", "v1").yaml_text == V1
    assert suites.versions("arithmetic") == ["v1"]
    suites.put("arithmetic", V2, "v2")  # storing the name again shows it again
    assert [s.name for s in suites.list()] == ["arithmetic", "other"]
    assert suites.get("arithmetic").version == "v2"


def test_unknown_suites_and_versions_are_not_found(store: Store):
    suites = SuiteRegistry(store)
    with pytest.raises(NotFoundError, match="no suite 'nope'"):
        suites.get("nope")
    with pytest.raises(NotFoundError):
        suites.hide("nope")
    suites.put("arithmetic", V1, "v1")
    with pytest.raises(NotFoundError, match="has no version 'v7'"):
        suites.get("arithmetic", "v7")
    with pytest.raises(StoreError, match="invalid suite name"):
        suites.get("../etc")
    assert suites.list() == [SuiteInfo("arithmetic", ["v1"], "v1")]


def test_concurrent_puts_of_different_versions_lose_none(store: Store):
    suites = SuiteRegistry(store)
    barrier = threading.Barrier(8)

    def put(i: int) -> None:
        barrier.wait()
        suites.put("busy", f"n: {i}\n", f"v{i}")

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(suites.versions("busy")) == [f"v{i}" for i in range(8)]
    for i in range(8):
        assert suites.get("busy", f"v{i}").yaml_text == f"n: {i}\n"


def test_a_version_whose_writer_died_before_its_marker_still_counts(store: Store):
    store.put("suites/arithmetic/v-orphan.yaml", V1.encode())  # no creation marker
    suites = SuiteRegistry(store)
    suites.put("arithmetic", V2, "v-new")
    assert suites.versions("arithmetic") == ["v-orphan", "v-new"]
    assert suites.get("arithmetic", "v-orphan").yaml_text == V1
