"""/v1/suites over real HTTP against the Serve deployment."""

from __future__ import annotations

import yaml

from .conftest import suite_document, suite_yaml


def test_creating_a_suite_stores_a_new_version_with_201(service, api):
    response = api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "create-me")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "create-me"
    assert body["created"] is True
    assert len(body["version"]) == 16
    assert body["versions"] == [body["version"]]


def test_creating_the_same_suite_again_returns_the_existing_version_with_200(service, api):
    text = suite_yaml(service.work, "same-twice")
    first = api.post("/v1/suites", json={"yaml": text})
    again = api.post("/v1/suites", json={"yaml": text})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["version"] == first.json()["version"]
    assert again.json()["created"] is False
    assert again.json()["versions"] == [first.json()["version"]]


def test_the_same_content_written_differently_is_the_same_version(service, api):
    document = suite_document(service.work, "reworded")
    first = api.post("/v1/suites", json={"yaml": yaml.safe_dump(document)})
    commented = "# a comment changes the text, not the suite\n" + yaml.safe_dump(
        document, sort_keys=False
    )
    again = api.post("/v1/suites", json={"yaml": commented})
    assert again.status_code == 200, again.text
    assert again.json()["version"] == first.json()["version"]


def test_new_content_under_an_existing_name_adds_a_version(service, api):
    v1 = api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "evolving")}).json()
    v2_doc = suite_document(service.work, "evolving", shard_size=7)
    v2 = api.post("/v1/suites", json={"suite": v2_doc})
    assert v2.status_code == 201, v2.text
    assert v2.json()["version"] != v1["version"]
    assert v2.json()["versions"] == [v1["version"], v2.json()["version"]]
    latest = api.get("/v1/suites/evolving").json()
    assert latest["version"] == v2.json()["version"]
    assert yaml.safe_load(latest["yaml"])["shard_size"] == 7
    old = api.get("/v1/suites/evolving", params={"version": v1["version"]}).json()
    assert yaml.safe_load(old["yaml"])["shard_size"] == 5


def test_a_suite_can_be_sent_as_a_json_object(service, api):
    response = api.post("/v1/suites", json={"suite": suite_document(service.work, "as-json")})
    assert response.status_code == 201, response.text
    stored = api.get("/v1/suites/as-json").json()
    assert yaml.safe_load(stored["yaml"])["name"] == "as-json"


def test_listing_shows_visible_suites_with_their_versions(service, api):
    created = api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "listed")}).json()
    suites = {s["name"]: s for s in api.get("/v1/suites").json()["suites"]}
    assert suites["listed"] == {
        "name": "listed",
        "latest": created["version"],
        "versions": [created["version"]],
        "tenant": suites["listed"]["tenant"],
    }
    assert suites["listed"]["tenant"].startswith("key-")  # a bare key is its own tenant


def test_deleting_hides_the_name_but_keeps_its_versions_readable(service, api):
    created = api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "doomed")}).json()
    deleted = api.delete("/v1/suites/doomed")
    assert deleted.status_code == 200
    assert deleted.json()["hidden"] is True
    assert "doomed" not in {s["name"] for s in api.get("/v1/suites").json()["suites"]}
    assert api.get("/v1/suites/doomed").status_code == 404
    pinned = api.get("/v1/suites/doomed", params={"version": created["version"]})
    assert pinned.status_code == 200
    assert pinned.json()["hidden"] is True and pinned.json()["latest"] is None
    # Storing it again makes the name visible again, with the same version.
    again = api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "doomed")})
    assert again.status_code == 200
    assert api.get("/v1/suites/doomed").json()["hidden"] is False


def test_an_invalid_suite_is_422_naming_the_field(service, api):
    document = suite_document(service.work, "broken")
    document["targets"][0]["provider"] = "nowhere"
    response = api.post("/v1/suites", json={"suite": document})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_suite"
    assert body["field"] == "targets[0].provider"
    assert "nowhere" in body["detail"]


def test_a_missing_dataset_is_422_naming_dataset_path(service, api):
    document = suite_document(service.work, "no-data")
    document["dataset"]["path"] = "does/not/exist.jsonl"
    response = api.post("/v1/suites", json={"suite": document})
    assert response.status_code == 422
    assert response.json()["field"] == "dataset.path"


def test_relative_dataset_paths_resolve_against_the_base_dir(service, api):
    document = suite_document(service.work, "relative")
    document["dataset"]["path"] = document["dataset"]["path"].rsplit("/", 1)[1]
    assert api.post("/v1/suites", json={"suite": document}).status_code == 201


def test_unparseable_yaml_is_422(service, api):
    response = api.post("/v1/suites", json={"yaml": "name: [unclosed"})
    assert response.status_code == 422
    assert "invalid YAML" in response.json()["detail"]


def test_a_body_with_both_or_neither_form_is_422(service, api):
    assert api.post("/v1/suites", json={}).status_code == 422
    both = api.post("/v1/suites", json={"yaml": "a: 1", "suite": {"a": 1}})
    assert both.status_code == 422
    assert "exactly one" in both.json()["detail"]


def test_unknown_suites_and_versions_are_404(service, api):
    assert api.get("/v1/suites/never-made").status_code == 404
    assert api.delete("/v1/suites/never-made").status_code == 404
    assert api.get("/v1/suites/..%2F..%2Fetc").status_code == 404
    api.post("/v1/suites", json={"yaml": suite_yaml(service.work, "versioned")})
    missing = api.get("/v1/suites/versioned", params={"version": "0000000000000000"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
