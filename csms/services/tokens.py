"""idTokens (who may charge) and API tokens (who may call the REST API)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from csms.domain import rules
from csms.domain.errors import InvalidRequest, NotFound
from csms.domain.models import (
    ApiScope,
    ApiToken,
    ApiTokenCreated,
    AuthorizationResult,
    IdToken,
    IdTokenStatus,
    Page,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.common import Clock, check_page, utcnow

# How long a RequestStartTransaction the CSMS sent vouches for its idToken.
REMOTE_START_WINDOW = timedelta(minutes=10)  # Authorize before the start (AuthorizeRemoteStart)
REMOTE_START_TX_WINDOW = timedelta(hours=24)  # TransactionEvents echoing the remoteStartId

ID_TOKEN_TYPES = frozenset(
    {
        "Central",
        "eMAID",
        "ISO14443",
        "ISO15693",
        "KeyCode",
        "Local",
        "MacAddress",
        "NoAuthorization",
    }
)


class IdTokenService:
    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self,
        id_token: str,
        type: str = "ISO14443",
        status: IdTokenStatus = IdTokenStatus.ACCEPTED,
        expires_at: datetime | None = None,
        group_id_token: str | None = None,
    ) -> IdToken:
        """Create or replace the token (id_token, type)."""
        if not 1 <= len(id_token) <= 36:
            raise InvalidRequest("idToken must be 1-36 characters")
        if type not in ID_TOKEN_TYPES:
            raise InvalidRequest(f"idToken type must be one of {sorted(ID_TOKEN_TYPES)}")
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidRequest("expires_at needs a timezone")
        token = IdToken(id_token, type, IdTokenStatus(status), expires_at, group_id_token)
        now = self._clock()
        await self._db.write(lambda c: repo.upsert_id_token(c, token, now))
        return await self.get(id_token, type)

    async def get(self, id_token: str, type: str = "ISO14443") -> IdToken:
        async with self._db.read() as conn:
            token = await repo.get_id_token(conn, id_token, type)
        if token is None:
            raise NotFound(f"idToken {id_token!r} ({type}) not found")
        return token

    async def list(self, offset: int = 0, limit: int = 50) -> Page[IdToken]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            return await repo.list_id_tokens(conn, offset, limit)

    async def set_status(self, id_token: str, type: str, status: IdTokenStatus) -> IdToken:
        status = IdTokenStatus(status)
        if not await self._db.write(lambda c: repo.set_id_token_status(c, id_token, type, status)):
            raise NotFound(f"idToken {id_token!r} ({type}) not found")
        return await self.get(id_token, type)

    async def delete(self, id_token: str, type: str = "ISO14443") -> None:
        if not await self._db.write(lambda c: repo.delete_id_token(c, id_token, type)):
            raise NotFound(f"idToken {id_token!r} ({type}) not found")

    async def authorize(
        self,
        id_token: str,
        type: str,
        *,
        station_id: str | None = None,
        remote_start_id: int | None = None,
    ) -> AuthorizationResult:
        """idTokenInfo for a token a station presents. A token not on file is still Accepted
        on the station the CSMS itself sent it to in RequestStartTransaction: with the same
        remoteStartId (TransactionEvent) within a day, or in an Authorize within minutes
        (AuthorizeRemoteStart: the station asks before it starts)."""
        if type == "NoAuthorization":
            return AuthorizationResult(status=IdTokenStatus.ACCEPTED)
        now = self._clock()
        async with self._db.read() as conn:
            token = await repo.get_id_token(conn, id_token, type)
            result = rules.authorize(token, now)
            if result.status is not IdTokenStatus.UNKNOWN or station_id is None:
                return result
            window = REMOTE_START_TX_WINDOW if remote_start_id is not None else REMOTE_START_WINDOW
            sent = await repo.sent_remote_starts(conn, station_id, now - window)
        if rules.remote_start_covers(sent, id_token, type, remote_start_id):
            return AuthorizationResult(status=IdTokenStatus.ACCEPTED)
        return result


def _token_hash(plaintext: str) -> str:
    # API tokens carry 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ApiTokenService:
    PREFIX = "csms_"

    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def create(self, name: str, scope: ApiScope | str = ApiScope.ADMIN) -> ApiTokenCreated:
        """A new token. The default (admin) is for callers that hold the database anyway
        (CLI bootstrap, tests, demo); the REST route asks for a scope explicitly."""
        if not 1 <= len(name) <= 100:
            raise InvalidRequest("token name must be 1-100 characters")
        try:
            chosen = ApiScope(scope)
        except ValueError:
            raise InvalidRequest(
                f"token scope must be one of {[s.value for s in ApiScope]}, got {scope!r}"
            ) from None
        plaintext = self.PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        token = await self._db.write(
            lambda c: repo.insert_api_token(c, name, _token_hash(plaintext), now, chosen)
        )
        return ApiTokenCreated(token=token, plaintext=plaintext)

    async def verify(self, plaintext: str) -> ApiToken | None:
        """The token's record if `plaintext` is a live (not revoked) token, else None."""
        async with self._db.read() as conn:
            token = await repo.get_api_token_by_hash(conn, _token_hash(plaintext))
        if token is None or token.revoked:
            return None
        return token

    async def revoke(self, token_id: int) -> None:
        now = self._clock()
        if not await self._db.write(lambda c: repo.revoke_api_token(c, token_id, now)):
            raise NotFound(f"API token {token_id} not found or already revoked")

    async def revoke_named(self, name: str) -> int:
        """Revoke every live token called `name`; returns how many (NotFound when none)."""
        now = self._clock()
        count = await self._db.write(lambda c: repo.revoke_api_tokens_named(c, name, now))
        if not count:
            raise NotFound(f"no live API token named {name!r}")
        return count

    async def list(self) -> list[ApiToken]:
        async with self._db.read() as conn:
            return await repo.list_api_tokens(conn)
