"""Bearer-key authentication of the HTTP service.

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
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from evalcluster.errors import SpecError
from evalcluster.serve.errors import ApiError

KEYS_ENV = "EVALCLUSTER_API_KEYS"


class AuthResult(enum.Enum):
    """The verdict on one request's credentials."""

    OK = "ok"
    MISSING = "missing"  # 401: no usable `Authorization: Bearer` credentials
    WRONG = "wrong"  # 403: a key that is not one of ours


@dataclass(frozen=True, repr=False)
class ApiKeys:
    """The accepted keys, as digests. Empty means authentication is off (explicitly allowed)."""

    digests: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, keys: list[str]) -> ApiKeys:
        """Keys from their plain values (blank ones dropped, duplicates merged)."""
        unique = sorted({k.strip() for k in keys if k.strip()})
        return cls(tuple(_digest(k) for k in unique))

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self.digests)} key(s))"

    def verify(self, token: str | None) -> AuthResult:
        """Check `token` (None when the request carried none) against every key."""
        if not self.digests:
            return AuthResult.OK
        if not token:
            return AuthResult.MISSING
        presented = _digest(token)
        matched = False
        for digest in self.digests:  # no early exit: the time does not depend on which matched
            matched |= hmac.compare_digest(presented, digest)
        return AuthResult.OK if matched else AuthResult.WRONG


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header (RFC 6750 section 2.1)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def load_api_keys(key_file: str | None = None, environ: dict[str, str] | None = None) -> ApiKeys:
    """Keys from ``$EVALCLUSTER_API_KEYS`` plus `key_file`; SpecError if the file is unreadable."""
    env = os.environ if environ is None else environ
    keys = [k for k in env.get(KEYS_ENV, "").split(",")]
    if key_file:
        path = Path(key_file).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise SpecError(
                f"cannot read {path}: {exc.strerror or exc}", field="api_keys_file"
            ) from None
        keys += [line for line in lines if not line.lstrip().startswith("#")]
    return ApiKeys.of(keys)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def check_credentials(
    keys: ApiKeys, authorization: str | None, query_token: str | None = None
) -> AuthResult:
    """Verdict for a request's `Authorization` header, or (WebSocket only) its ``?token=``."""
    return keys.verify(bearer_token(authorization) or query_token or None)


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from EVALCLUSTER_API_KEYS or the service's key file.",
)


def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """FastAPI dependency of every ``/v1`` route: 401 without a key, 403 with a wrong one."""
    keys: ApiKeys = request.app.state.context.settings.api_keys
    verdict = keys.verify(credentials.credentials if credentials else None)
    if verdict is AuthResult.MISSING:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if verdict is AuthResult.WRONG:
        raise ApiError(
            403, "invalid API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
