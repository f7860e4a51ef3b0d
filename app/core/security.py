"""Password hashing (argon2) and staff tokens (JWT, HS256)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core import clock
from app.core.settings import get_settings

_hasher = PasswordHasher()
# A real hash of a random value: verifying against it when the user does not exist keeps
# the login time the same for known and unknown emails.
_DECOY_HASH = _hasher.hash(secrets.token_urlsafe(16))

TOKEN_ALGORITHM = "HS256"
TOKEN_AUDIENCE = "tourline-staff"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DECOY_HASH, password) and password_hash is not None
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
            options={"require": ["exp", "sub", "aud"], "verify_exp": False},
        )
        if int(claims["exp"]) <= int(clock.now().timestamp()):
            return None
        return TokenClaims(UUID(str(claims["sub"])), int(claims.get("ver", 0)))
    except (jwt.PyJWTError, ValueError, KeyError, TypeError):
        return None
