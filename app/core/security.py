"""Password hashing (argon2) and staff tokens (JWT, HS256).

Configured once per process at startup (`configure`) with the settings' secret key, token
lifetime and hashing cost."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core import clock
from app.core.settings import Settings


@dataclass(frozen=True, slots=True)
class _Keys:
    secret_key: str
    token_ttl: timedelta
    password_hashing: str


_keys: _Keys | None = None


def configure(settings: Settings) -> None:
    """Sign tokens with `settings`' key and hash passwords at its cost in this process."""
    global _keys
    _keys = _Keys(
        settings.secret_key,
        timedelta(minutes=settings.token_ttl_minutes),
        settings.password_hashing,
    )
    _hasher.cache_clear()


def _configured() -> _Keys:
    if _keys is None:
        raise RuntimeError("app.core.security is not configured: call configure(settings)")
    return _keys


@lru_cache(maxsize=1)
def _hasher() -> tuple[PasswordHasher, str]:
    """The argon2 hasher, and a decoy hash verified for unknown emails so that a login takes
    the same time whether or not the account exists."""
    if _configured().password_hashing == "fast":
        # Test suites only: production refuses this setting.
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    else:
        hasher = PasswordHasher()
    return hasher, hasher.hash(secrets.token_urlsafe(16))


TOKEN_ALGORITHM = "HS256"
TOKEN_AUDIENCE = "tourline-staff"


def hash_password(password: str) -> str:
    return _hasher()[0].hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, decoy = _hasher()
    try:
        return hasher.verify(password_hash or decoy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_staff_token(staff_id: UUID, session_version: int) -> tuple[str, int]:
    keys = _configured()
    issued = clock.now()
    ttl = keys.token_ttl
    claims = {
        "sub": str(staff_id),
        "ver": session_version,
        "aud": TOKEN_AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    token = jwt.encode(claims, keys.secret_key, algorithm=TOKEN_ALGORITHM)
    return token, int(ttl.total_seconds())


def staff_form_token(token: str) -> str:
    """The token a staff page's forms carry: derived from the staff token (HMAC with the
    secret key), so it is good for that session only and another site cannot forge it."""
    secret = _configured().secret_key.encode()
    return hmac.new(secret, f"staff-form:{token}".encode(), hashlib.sha256).hexdigest()[:40]


class TokenClaims:
    __slots__ = ("session_version", "staff_id")

    def __init__(self, staff_id: UUID, session_version: int) -> None:
        self.staff_id = staff_id
        self.session_version = session_version


def read_staff_token(token: str) -> TokenClaims | None:
    """Decode and verify a staff token; None when it is invalid or expired."""
    try:
        claims = jwt.decode(
            token,
            _configured().secret_key,
            algorithms=[TOKEN_ALGORITHM],
            audience=TOKEN_AUDIENCE,
            # Time claims follow the app clock (tests freeze it), not the wall clock: expiry is
            # checked below, and a token issued at a frozen "now" must not look premature.
            options={
                "require": ["exp", "sub", "aud"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
        if int(claims["exp"]) <= int(clock.now().timestamp()):
            return None
        return TokenClaims(UUID(str(claims["sub"])), int(claims.get("ver", 0)))
    except (jwt.PyJWTError, ValueError, KeyError, TypeError):
        return None
