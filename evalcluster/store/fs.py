"""The object store under the results lake: a local folder or an S3 bucket, behind one API.

`open_store(uri)` gives a `Store`. Keys are ``/``-separated paths relative to the store root
(``runs/run_id=r1/target=t/shard-0.parquet``). Every write is atomic: a reader sees the whole
object or nothing, never a partial one.

- Local folders: a hidden temp file (``.<name>.<random>.tmp``) in the target directory, fsync,
  then ``os.link`` (create only if absent) or ``os.replace`` (overwrite).
- S3 (and MinIO, Ceph and other S3-compatible stores): one ``PutObject`` through boto3;
  ``put_if_absent`` sends ``If-None-Match: *`` so the store itself refuses an existing key with
  412 Precondition Failed (AWS S3 conditional writes, GA since 2024-08; MinIO supports it too).
  boto3 rather than s3fs: s3fs caches listings (stale ``exists``/``list``) and its file objects
  commit a truncated object when an exception escapes the ``with`` block.

Missing objects raise `evalcluster.errors.NotFoundError` (a `StoreError`); every other failure
raises `StoreError` with a message that names the object's URI and never a credential. Key
segments must not start with ``.``: those names are reserved for temp files, which `list` and
the lake's readers never see. Stores pickle without their clients (Ray ships them to workers)
and rebuild them lazily.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from evalcluster.errors import NotFoundError, StoreError

__all__ = [
    "ArrowLocation",
    "LocalStore",
    "S3Options",
    "S3Store",
    "Store",
    "check_key",
    "open_store",
]


class ArrowLocation(NamedTuple):
    """Where a key lives for pyarrow: pass both to `pyarrow.dataset` or `pyarrow.parquet`."""

    filesystem: pafs.FileSystem
    path: str


def check_key(key: str, *, what: str = "key") -> str:
    """Return `key` if it is a valid object key, else raise `StoreError` naming it."""
    if not key or key.startswith("/") or key.endswith("/"):
        raise StoreError(f"invalid store {what} {key!r}: not a relative object path")
    for segment in key.split("/"):
        if not segment or segment in (".", "..") or segment.startswith(".") or "\\" in segment:
            raise StoreError(
                f"invalid store {what} {key!r}: empty, '.'-prefixed or backslashed segment"
            )
        if "\x00" in segment:
            raise StoreError(f"invalid store {what} {key!r}: NUL character")
    return key


def _check_prefix(prefix: str) -> str:
    if prefix:
        check_key(prefix.rstrip("/") or "/", what="prefix")
    return prefix


class Store(ABC):
    """An object store: atomic whole-object writes, reads, listing; sync (run it in threads)."""

    uri: str

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `data` unless it exists. True if this call created it.

        False means the existing object was kept untouched. On S3, if a transient error made
        the SDK retry a put whose first try had in fact landed, the retry sees 412 and this
        returns False although the object holds this call's data.
        """

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create or atomically replace `key` with `data`."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object. Raises `NotFoundError` when `key` does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys (relative to the root) that start with `prefix`; temp files excluded."""

    @abstractmethod
    def list_dirs(self, prefix: str = "") -> list[str]:
        """Sorted names of the "directories" right under `prefix` (``""`` or ending in ``/``)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    @abstractmethod
    def arrow_filesystem_and_path(self, key: str = "") -> ArrowLocation:
        """A pyarrow filesystem and the path of `key` (or of the root) on it."""

    @abstractmethod
    def full_uri(self, key: str = "") -> str:
        """The absolute URI (local path or ``s3://...``) of `key`, or of the root."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStore(Store):
    """A store in a local folder (created on first write)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.uri = self.root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStore) and other.root == self.root

    def __hash__(self) -> int:
        return hash(("local", self.root))

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def full_uri(self, key: str = "") -> str:
        return self._path(key) if key else self.root

    def _write_temp(self, path: str, data: bytes) -> str:
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _unlink_quietly(temp)
            raise
        return temp

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            temp = self._write_temp(path, data)
            try:
                # link() fails with EEXIST instead of replacing: the create-only step is atomic.
                os.link(temp, path)
            except FileExistsError:
                return False
            finally:
                _unlink_quietly(temp)
            _fsync_dir(os.path.dirname(path))
            return True
        except OSError as e:
            raise StoreError(f"cannot write {path}: {e.strerror or e}") from e

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            temp = self._write_temp(path, data)
            try:
                os.replace(temp, path)
            except BaseException:
                _unlink_quietly(temp)
                raise
            _fsync_dir(os.path.dirname(path))
        except OSError as e:
            raise StoreError(f"cannot write {path}: {e.strerror or e}") from e

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise NotFoundError(f"no object at {path}") from e
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror or e}") from e

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        base = prefix.rpartition("/")[0]
        top = os.path.join(self.root, *base.split("/")) if base else self.root
        keys = []
        for directory, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = os.path.relpath(directory, self.root).replace(os.sep, "/")
            for name in files:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_dirs(self, prefix: str = "") -> list[str]:
        _check_dir_prefix(prefix)
        top = os.path.join(self.root, *prefix.rstrip("/").split("/")) if prefix else self.root
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"cannot delete {path}: {e.strerror or e}") from e
        # Drop directories left empty so list_dirs agrees with S3, where prefixes vanish.
        directory = os.path.dirname(path)
        while directory != self.root and directory.startswith(self.root):
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def arrow_filesystem_and_path(self, key: str = "") -> ArrowLocation:
        return ArrowLocation(pafs.LocalFileSystem(), self.full_uri(key))


def _check_dir_prefix(prefix: str) -> None:
    if prefix and not prefix.endswith("/"):
        raise StoreError(f"invalid directory prefix {prefix!r}: must end with '/'")
    _check_prefix(prefix)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(directory: str) -> None:
    # Makes the new directory entry itself durable (POSIX); not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class S3Options:
    """Where and as whom to reach S3. `repr` never shows the secret parts."""

    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = None
    secret: str | None = None
    token: str | None = None
    anon: bool = False

    def __repr__(self) -> str:
        return (
            f"S3Options(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"credentials={'explicit' if self.key else 'default chain'}, anon={self.anon})"
        )

    def redact(self, text: str) -> str:
        """`text` with every configured secret value replaced by ``***``."""
        for secret in (self.key, self.secret, self.token):
            if secret:
                text = text.replace(secret, "***")
        return text


# A concurrent conditional write to the same key gets 409 ConditionalRequestConflict; AWS says
# to retry, and the retry then answers 412 if the other writer won.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
_CONFLICT_RETRIES = 5


class S3Store(Store):
    """A store under ``s3://bucket/prefix``, on AWS or any S3-compatible endpoint."""

    def __init__(self, bucket: str, prefix: str, options: S3Options):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._lock = threading.Lock()
        self._client: Any = None
        self._arrow_fs: pafs.S3FileSystem | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_lock=None, _client=None, _arrow_fs=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Store) and (other.uri, other.options) == (
            self.uri,
            self.options,
        )

    def __hash__(self) -> int:
        return hash(("s3", self.uri, self.options.endpoint_url))

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint_url={self.options.endpoint_url!r})"

    # -- clients, built lazily (and again after unpickling) --------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe once built)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        o = self.options
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=60,
            # Custom endpoints (MinIO, moto, Ceph) rarely resolve bucket subdomains.
            s3={"addressing_style": "path" if o.endpoint_url else "auto"},
            signature_version=UNSIGNED if o.anon else None,
        )
        session = boto3.session.Session(
            aws_access_key_id=o.key, aws_secret_access_key=o.secret, aws_session_token=o.token
        )
        return session.client(
            "s3", endpoint_url=o.endpoint_url, region_name=o.region, config=config
        )

    def _object(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def full_uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._object(key)}" if key else self.uri

    def _error(self, action: str, key: str, exc: Exception) -> StoreError:
        where = self.full_uri(key) if key else self.uri
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code", "?")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            detail = f"{code} (HTTP {status})"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return StoreError(self.options.redact(f"cannot {action} {where}: {detail}"))

    # -- the Store API ------------------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> bool:
        name = self._object(key)
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*")
                return True
            except Exception as e:
                code = _error_code(e)
                if code == "PreconditionFailed" or _status(e) == 412:
                    return False
                if code == "ConditionalRequestConflict" and attempt < _CONFLICT_RETRIES:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise self._error("write", key, e) from None
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes) -> None:
        name = self._object(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data)
        except Exception as e:
            raise self._error("write", key, e) from None

    def get(self, key: str) -> bytes:
        name = self._object(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name)
            return response["Body"].read()
        except Exception as e:
            if _error_code(e) in ("NoSuchKey", "404") or _status(e) == 404:
                raise NotFoundError(f"no object at {self.full_uri(key)}") from None
            raise self._error("read", key, e) from None

    def exists(self, key: str) -> bool:
        name = self._object(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
            return True
        except Exception as e:
            if _status(e) == 404:
                return False
            raise self._error("check", key, e) from None

    def _paginate(self, prefix: str, **extra: Any) -> Any:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        paginator = self.client.get_paginator("list_objects_v2")
        return paginator.paginate(Bucket=self.bucket, Prefix=full, **extra)

    def list(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        try:
            for page in self._paginate(prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][cut:]
                    if key and not any(s.startswith(".") for s in key.split("/")):
                        keys.append(key)
        except Exception as e:
            raise self._error("list", "", e) from None
        return sorted(keys)

    def list_dirs(self, prefix: str = "") -> list[str]:
        _check_dir_prefix(prefix)
        names = []
        try:
            for page in self._paginate(prefix, Delimiter="/"):
                for item in page.get("CommonPrefixes", ()):
                    name = item["Prefix"].rstrip("/").rpartition("/")[2]
                    if name and not name.startswith("."):
                        names.append(name)
        except Exception as e:
            raise self._error("list", "", e) from None
        return sorted(names)

    def delete(self, key: str) -> None:
        name = self._object(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except Exception as e:
            raise self._error("delete", key, e) from None

    def arrow_filesystem_and_path(self, key: str = "") -> ArrowLocation:
        if self._arrow_fs is None:
            with self._lock:
                if self._arrow_fs is None:
                    self._arrow_fs = self._make_arrow_fs()
        path = f"{self.bucket}/{self._object(key)}" if key else self.uri[len("s3://") :]
        return ArrowLocation(self._arrow_fs, path)

    def _make_arrow_fs(self) -> pafs.S3FileSystem:
        o = self.options
        kwargs: dict[str, Any] = {
            "anonymous": o.anon,
            "connect_timeout": 10,
            "request_timeout": 60,
            "allow_bucket_creation": False,
            "allow_bucket_deletion": False,
        }
        if o.key:
            kwargs.update(access_key=o.key, secret_key=o.secret, session_token=o.token)
        if o.endpoint_url:
            parts = urlsplit(o.endpoint_url)
            kwargs.update(
                endpoint_override=parts.netloc or parts.path, scheme=parts.scheme or "https"
            )
        region = o.region
        if region is None and not o.endpoint_url:
            try:
                region = pafs.resolve_s3_region(self.bucket)
            except OSError:
                region = None
        if region:
            kwargs["region"] = region
        try:
            return pafs.S3FileSystem(**kwargs)
        except Exception as e:
            raise self._error("open", "", e) from None


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


_S3_OPTIONS = {"key", "secret", "token", "endpoint_url", "region", "anon", "client_kwargs"}


def _s3_options(endpoint_url: str | None, storage_options: dict[str, Any]) -> S3Options:
    unknown = sorted(set(storage_options) - _S3_OPTIONS)
    if unknown:
        raise StoreError(
            f"unknown S3 storage option {unknown[0]!r} (known: {', '.join(sorted(_S3_OPTIONS))})"
        )
    client_kwargs = storage_options.get("client_kwargs") or {}
    endpoint = (
        endpoint_url
        or storage_options.get("endpoint_url")
        or client_kwargs.get("endpoint_url")
        # The AWS SDKs' service-specific variable wins over the global one.
        # https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )
    region = (
        storage_options.get("region")
        or client_kwargs.get("region_name")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or ("us-east-1" if endpoint else None)
    )
    key, secret = storage_options.get("key"), storage_options.get("secret")
    if bool(key) != bool(secret):
        raise StoreError("S3 storage options need both 'key' and 'secret', or neither")
    return S3Options(
        endpoint_url=endpoint,
        region=region,
        key=key,
        secret=secret,
        token=storage_options.get("token"),
        anon=bool(storage_options.get("anon", False)),
    )


def open_store(
    uri: str, *, endpoint_url: str | None = None, storage_options: dict[str, Any] | None = None
) -> Store:
    """The store at `uri`: a local path, ``file:///path`` or ``s3://bucket[/prefix]``.

    For S3 the endpoint is `endpoint_url`, else ``storage_options["endpoint_url"]``, else the
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` environment variable, else AWS itself.
    `storage_options` takes s3fs's names: ``key``, ``secret``, ``token``, ``region``, ``anon``,
    ``endpoint_url`` and ``client_kwargs`` (``endpoint_url``, ``region_name``). Without keys the
    AWS default credential chain (environment, profile, instance role) applies.
    """
    if not uri:
        raise StoreError("empty store URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc:
            raise StoreError(f"invalid store URI {uri!r}: no bucket")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix, what="store prefix")
        return S3Store(parts.netloc, prefix, _s3_options(endpoint_url, storage_options or {}))
    if storage_options:
        raise StoreError(f"storage options are for s3:// stores, not {uri!r}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"invalid store URI {uri!r}: remote file:// hosts are not supported")
        return LocalStore(parts.path)
    if scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive
        raise StoreError(f"unsupported store URI {uri!r}: use a folder, file:// or s3://")
    return LocalStore(uri)
