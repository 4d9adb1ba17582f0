"""Id tokens (who may charge) and API tokens (who may call this API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from csms.api.deps import ADMIN, READ, Paging, Services, TokenCache
from csms.api.errors import ApiProblem
from csms.api.schemas import (
    ApiTokenCreate,
    ApiTokenCreatedRead,
    ApiTokenRead,
    IdTokenCreate,
    IdTokenRead,
    IdTokenUpdate,
    PageRead,
    page_read,
)
from csms.domain.models import ApiScope, IdTokenStatus

id_tokens_router = APIRouter(prefix="/id-tokens", tags=["id tokens"])
api_tokens_router = APIRouter(prefix="/api-tokens", tags=["api tokens"])

TokenType = Annotated[str, Query(description="IdTokenEnumType")]


@id_tokens_router.get(
    "", dependencies=[READ], response_model=PageRead[IdTokenRead], summary="List id tokens"
)
async def list_id_tokens(services: Services, paging: Paging) -> PageRead[IdTokenRead]:
    page = await services.id_tokens.list(paging.offset, paging.limit)
    return page_read(IdTokenRead, page)


@id_tokens_router.post(
    "",
    dependencies=[ADMIN],
    response_model=IdTokenRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create (or replace) an id token",
)
async def create_id_token(services: Services, body: IdTokenCreate) -> IdTokenRead:
    token = await services.id_tokens.create(
        body.id_token,
        body.type,
        IdTokenStatus(body.status),
        body.expires_at,
        body.group_id_token,
    )
    return IdTokenRead.model_validate(token)


@id_tokens_router.get(
    "/{id_token}", dependencies=[READ], response_model=IdTokenRead, summary="One id token"
)
async def get_id_token(
    services: Services, id_token: str, type: TokenType = "ISO14443"
) -> IdTokenRead:
    return IdTokenRead.model_validate(await services.id_tokens.get(id_token, type))


@id_tokens_router.patch(
    "/{id_token}",
    dependencies=[ADMIN],
    response_model=IdTokenRead,
    summary="Change an id token's status (Accepted, Blocked, ...)",
)
async def update_id_token(
    services: Services, id_token: str, body: IdTokenUpdate, type: TokenType = "ISO14443"
) -> IdTokenRead:
    token = await services.id_tokens.set_status(id_token, type, IdTokenStatus(body.status))
    return IdTokenRead.model_validate(token)


@id_tokens_router.delete(
    "/{id_token}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an id token",
)
async def delete_id_token(
    services: Services, id_token: str, type: TokenType = "ISO14443"
) -> Response:
    await services.id_tokens.delete(id_token, type)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api_tokens_router.get(
    "", dependencies=[ADMIN], response_model=list[ApiTokenRead], summary="List API tokens"
)
async def list_api_tokens(services: Services) -> list[ApiTokenRead]:
    return [ApiTokenRead.model_validate(t) for t in await services.api_tokens.list()]


@api_tokens_router.post(
    "",
    dependencies=[ADMIN],
    response_model=ApiTokenCreatedRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API token (the plaintext is shown once)",
)
async def create_api_token(services: Services, body: ApiTokenCreate) -> ApiTokenCreatedRead:
    created = await services.api_tokens.create(body.name, ApiScope(body.scope))
    return ApiTokenCreatedRead(
        token=ApiTokenRead.model_validate(created.token), plaintext=created.plaintext
    )


@api_tokens_router.delete(
    "/{token_id}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API token",
)
async def revoke_api_token(
    services: Services,
    request: Request,
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="the token's id")],
) -> Response:
    tokens = {t.id: t for t in await services.api_tokens.list()}
    if token_id not in tokens or tokens[token_id].revoked:
        raise ApiProblem(404, f"no active API token with id {token_id}")
    await services.api_tokens.revoke(token_id)
    cache: TokenCache = request.app.state.token_cache
    cache.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
