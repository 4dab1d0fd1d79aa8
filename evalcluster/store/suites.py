"""The suite registry: immutable, named, versioned suite files in the store.

```
suites/<name>/<version>.yaml              the suite file, written once, never changed
suites/<name>/_versions/<ns>-<version>    empty marker; <ns> (creation time, 20 digits) orders them
suites/<name>/_hidden                     present while the name is hidden (DELETE /v1/suites/x)
```

The service keeps each tenant's suites the same way under ``tenants/<tenant>/suites/``.

Creation order comes from the marker names, found with one listing, instead of a shared
``_index.json``: two writers adding versions at once would each rewrite such an index and one
entry would be lost, while markers are separate objects that cannot overwrite each other. A
version file without a marker (its writer died in between) still counts, ordered before the
marked ones, and the next `put` of it adds the marker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

from evalcluster.errors import NotFoundError, StoreError
from evalcluster.store.fs import Store
from evalcluster.store.layout import SUITES_PREFIX, check_name

__all__ = ["SuiteInfo", "SuitePut", "SuiteRegistry", "SuiteVersion", "VersionConflictError"]


class VersionConflictError(StoreError):
    """A suite version already exists with different content (versions are immutable)."""


class _Scan(NamedTuple):
    stored: list[str]  # versions with a suite file, by name
    marked: list[str]  # those with a creation marker, oldest first


class SuitePut(NamedTuple):
    """What `SuiteRegistry.put` did."""

    version: str
    created: bool  # False: this exact version was already stored


class SuiteVersion(NamedTuple):
    """One stored suite version."""

    version: str
    yaml_text: str


@dataclass(frozen=True)
class SuiteInfo:
    """A visible suite name, its versions (oldest first) and the latest one."""

    name: str
    versions: list[str]
    latest: str


class SuiteRegistry:
    """Named, versioned suite files in `store`. Sync; callers run it in a thread."""

    def __init__(self, store: Store, prefix: str = SUITES_PREFIX):
        """`prefix`: the folder of the suites (``tenants/<t>/suites/`` for a tenant's)."""
        self.store = store
        self.prefix = prefix

    def _folder(self, name: str) -> str:
        return f"{self.prefix}{check_name('suite name', name)}/"

    def _version_key(self, name: str, version: str) -> str:
        return f"{self._folder(name)}{check_name('suite version', version)}.yaml"

    def _hidden_key(self, name: str) -> str:
        return f"{self._folder(name)}_hidden"

    def put(self, name: str, yaml_text: str, version: str) -> SuitePut:
        """Store `yaml_text` as `version` of suite `name` unless that version exists.

        Storing the same content again returns ``created=False``; different content under an
        existing version raises VersionConflictError. A hidden name becomes visible again.
        """
        key = self._version_key(name, version)
        data = yaml_text.encode()
        created = self.store.put_if_absent(key, data)
        if not created and self.store.get(key) != data:
            raise VersionConflictError(
                f"suite {name!r} version {version!r} exists with different content"
            )
        if version not in self._scan(name).marked:
            marker = f"{self._folder(name)}_versions/{time.time_ns():020d}-{version}"
            self.store.put(marker, b"")
        self.store.delete(self._hidden_key(name))
        return SuitePut(version, created)

    def _scan(self, name: str) -> _Scan:
        folder = self._folder(name)
        keys = self.store.list(folder)
        stored = sorted(
            k[len(folder) : -len(".yaml")]
            for k in keys
            if k.endswith(".yaml") and "/" not in k[len(folder) :]
        )
        marked: list[str] = []
        for k in keys:  # sorted, so markers come oldest first
            if k.startswith(f"{folder}_versions/"):
                version = k.rpartition("/")[2].partition("-")[2]
                if version in stored and version not in marked:
                    marked.append(version)
        return _Scan(stored, marked)

    def _ordered_versions(self, name: str) -> list[str]:
        scan = self._scan(name)
        return [v for v in scan.stored if v not in scan.marked] + scan.marked

    def versions(self, name: str) -> list[str]:
        """Every stored version of `name`, oldest first, hidden or not. NotFoundError if none."""
        versions = self._ordered_versions(name)
        if not versions:
            raise NotFoundError(f"no suite {name!r}")
        return versions

    def is_hidden(self, name: str) -> bool:
        """Whether `name` has been hidden (and not stored again since)."""
        return self.store.exists(self._hidden_key(name))

    def get(self, name: str, version: str | None = None) -> SuiteVersion:
        """`version` of suite `name`, or its latest version when `version` is None.

        A hidden name has no latest version, but its versions stay readable by name, so a run
        can always be reproduced. NotFoundError when there is no such suite or version.
        """
        if version is None:
            if self.is_hidden(name):
                raise NotFoundError(f"no suite {name!r} (it was deleted)")
            version = self.versions(name)[-1]
        try:
            data = self.store.get(self._version_key(name, version))
        except NotFoundError:
            raise NotFoundError(f"suite {name!r} has no version {version!r}") from None
        return SuiteVersion(version, data.decode())

    def list(self) -> list[SuiteInfo]:
        """The visible suites, by name."""
        infos = []
        for name in self.store.list_dirs(self.prefix):
            try:
                check_name("suite name", name)
            except StoreError:
                continue  # not ours
            if self.is_hidden(name):
                continue
            versions = self._ordered_versions(name)
            if versions:
                infos.append(SuiteInfo(name, versions, versions[-1]))
        return infos

    def hide(self, name: str) -> None:
        """Hide `name` from `list` and from `get` without a version. NotFoundError if unknown."""
        self.versions(name)
        self.store.put(self._hidden_key(name), b"")
