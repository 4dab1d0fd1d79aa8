"""Bearer-key authentication of the HTTP service: which tenant a key belongs to.

Ray's own token authentication guards the dashboard and the job API, not Serve routes, so the
service checks its own keys. Keys come from ``EVALCLUSTER_API_KEYS`` (comma-separated) and/or a
key file (one per line, ``#`` comments). Only SHA-256 digests are kept: the deployment's pickled
arguments never hold a key, and every presented key is compared with every stored digest by
`hmac.compare_digest`, so neither the match position nor the content leaks through timing.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from evalcluster.errors import SpecError
from evalcluster.serve.config import ROLE_RANK, Quotas, Role, TenantConfig
from evalcluster.serve.errors import ApiError

KEYS_ENV = "EVALCLUSTER_API_KEYS"
NO_AUTH_TENANT = "anonymous"


class AuthResult(enum.Enum):
    """The verdict on one request's credentials."""

    OK = "ok"
    MISSING = "missing"  # 401: no usable `Authorization: Bearer` credentials
    WRONG = "wrong"  # 403: a key that is not one of ours


@dataclass(frozen=True)
class Principal:
    """Who is asking: a tenant, its role and quotas, and which of its keys (a digest prefix,
    for the audit log; never the key)."""

    tenant: str
    role: Role
    quotas: Quotas
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can(self, role: Role) -> bool:
        """Whether this principal's role includes `role`'s rights."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def sees(self, tenant: str | None) -> bool:
        """Whether a thing owned by `tenant` (None: no owner, e.g. a CLI run) is visible."""
        return self.is_admin or (tenant is not None and tenant == self.tenant)


@dataclass(frozen=True)
class TenantInfo:
    """A tenant as the service knows it at run time."""

    name: str
    role: Role
    quotas: Quotas


@dataclass(frozen=True, repr=False)
class ApiKeys:
    """The accepted keys, as digests, each with its tenant. Empty: authentication is off."""

    digests: tuple[bytes, ...] = ()
    owners: tuple[str, ...] = ()  # owners[i] is the tenant of digests[i]
    tenants: tuple[TenantInfo, ...] = ()

    @classmethod
    def of(cls, keys: list[str], quotas: Quotas | None = None) -> ApiKeys:
        """Bare keys (blank ones dropped, duplicates merged): each its own runner tenant."""
        unique = sorted({k.strip() for k in keys if k.strip()})
        digests = tuple(_digest(k) for k in unique)
        owners = tuple(bare_key_tenant(d) for d in digests)
        infos = tuple(TenantInfo(o, "runner", quotas or Quotas()) for o in owners)
        return cls(digests, owners, infos)

    def merged(self, other: ApiKeys) -> ApiKeys:
        """Both sets of keys; SpecError if one key would belong to two tenants."""
        mine = dict(zip(self.digests, self.owners, strict=True))
        for digest, owner in zip(other.digests, other.owners, strict=True):
            if mine.get(digest, owner) != owner:
                raise SpecError(
                    f"one API key is given to two tenants ({mine[digest]!r} and {owner!r})",
                    field=f"tenants.{owner}",
                )
            mine[digest] = owner
        infos = {t.name: t for t in (*self.tenants, *other.tenants)}
        ordered = sorted(mine.items())
        return ApiKeys(
            tuple(d for d, _ in ordered), tuple(o for _, o in ordered), tuple(infos.values())
        )

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self.digests)} key(s), {len(self.tenants)} tenant(s))"

    def tenant(self, name: str) -> TenantInfo | None:
        return next((t for t in self.tenants if t.name == name), None)

    def identify(self, token: str | None) -> Principal | AuthResult:
        """The principal `token` belongs to, or why not (MISSING, WRONG).

        Every stored digest is compared, with no early exit: the time does not depend on which
        key matched or how much of it.
        """
        if not self.digests:
            return Principal(NO_AUTH_TENANT, "admin", Quotas(), "none")
        if not token:
            return AuthResult.MISSING
        presented = _digest(token)
        found = -1
        for i, digest in enumerate(self.digests):
            if hmac.compare_digest(presented, digest):
                found = i
        if found < 0:
            return AuthResult.WRONG
        info = self.tenant(self.owners[found])
        assert info is not None  # every owner has its TenantInfo (built together)
        return Principal(info.name, info.role, info.quotas, presented.hex()[:12])

    def verify(self, token: str | None) -> AuthResult:
        """Check `token` (None when the request carried none) against every key."""
        found = self.identify(token)
        return found if isinstance(found, AuthResult) else AuthResult.OK


def bare_key_tenant(digest: bytes) -> str:
    """The tenant name of a key given without one (EVALCLUSTER_API_KEYS, a key file)."""
    return f"key-{digest.hex()[:12]}"


def tenant_keys(name: str, config: TenantConfig, environ: Mapping[str, str]) -> ApiKeys:
    """The keys of one configured tenant, from its variable and/or file."""
    keys: list[str] = []
    if config.api_keys_env:
        keys += environ.get(config.api_keys_env, "").split(",")
    if config.api_keys_file:
        keys += _read_key_file(config.api_keys_file, f"tenants.{name}.api_keys_file")
    unique = sorted({k.strip() for k in keys if k.strip()})
    if not unique:
        source = config.api_keys_env or config.api_keys_file
        raise SpecError(
            f"tenant {name!r} has no API key (none in {source})", field=f"tenants.{name}"
        )
    digests = tuple(_digest(k) for k in unique)
    info = TenantInfo(name, config.role, config.quotas)
    return ApiKeys(digests, (name,) * len(digests), (info,))


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header (RFC 6750 section 2.1)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def load_api_keys(
    key_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    quotas: Quotas | None = None,
) -> ApiKeys:
    """Bare keys from ``$EVALCLUSTER_API_KEYS`` plus `key_file`, each its own runner tenant;
    SpecError if the file is unreadable."""
    env = os.environ if environ is None else environ
    keys = [k for k in env.get(KEYS_ENV, "").split(",")]
    if key_file:
        keys += _read_key_file(key_file, "api_keys_file")
    return ApiKeys.of(keys, quotas)


def _read_key_file(key_file: str, field: str) -> list[str]:
    path = Path(key_file).expanduser()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}", field=field) from None
    return [line for line in lines if not line.lstrip().startswith("#")]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def check_credentials(
    keys: ApiKeys, authorization: str | None, query_token: str | None = None
) -> Principal | AuthResult:
    """Who a request is, from its `Authorization` header or (WebSocket only) its ``?token=``."""
    return keys.identify(bearer_token(authorization) or query_token or None)


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key of a tenant in the service configuration (or EVALCLUSTER_API_KEYS).",
)


def require_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    """FastAPI dependency of every ``/v1`` route: the caller, 401 without a key, 403 wrong."""
    keys: ApiKeys = request.app.state.context.settings.api_keys
    found = keys.identify(credentials.credentials if credentials else None)
    if found is AuthResult.MISSING:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if found is AuthResult.WRONG:
        raise ApiError(
            403, "invalid API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    assert isinstance(found, Principal)
    request.state.principal = found
    return found


def require_role(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that also needs `role` (runner to start runs, admin for the audit log)."""

    def check(principal: Principal = Depends(require_principal)) -> Principal:
        if not principal.can(role):
            raise ApiError(
                403, f"this needs the {role} role; tenant {principal.tenant!r} is {principal.role}"
            )
        return principal

    return check
