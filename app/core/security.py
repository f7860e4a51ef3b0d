"""Password hashing (argon2) and staff tokens (JWT, HS256)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import lru_cache
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core import clock
from app.core.settings import get_settings


@lru_cache(maxsize=1)
def _hasher() -> tuple[PasswordHasher, str]:
    """The argon2 hasher, and a decoy hash verified for unknown emails so that a login takes
    the same time whether or not the account exists."""
    if get_settings().password_hashing == "fast":
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
    settings = get_settings()
    issued = clock.now()
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    claims = {
        "sub": str(staff_id),
        "ver": session_version,
        "aud": TOKEN_AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    token = jwt.encode(claims, settings.secret_key, algorithm=TOKEN_ALGORITHM)
    return token, int(ttl.total_seconds())


class TokenClaims:
    __slots__ = ("session_version", "staff_id")

    def __init__(self, staff_id: UUID, session_version: int) -> None:
        self.staff_id = staff_id
        self.session_version = session_version


def read_staff_token(token: str) -> TokenClaims | None:
    """Decode and verify a staff token; None when it is invalid or expired."""
    settings = get_settings()
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
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
