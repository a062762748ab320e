"""Request dependencies: the runtime, and the caller behind a bearer token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters.http.auth import Principal
from adapters.http.errors import ApiError

if TYPE_CHECKING:
    from adapters.http.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="A token from `gridcase token create`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was started with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def caller(request: Request, token: str | None) -> Principal | None:
    """The caller a token stands for, or None when no token was given; 401 for an unknown or revoked one."""
    if token is None:
        return None
    principal = runtime_of(request).tokens.verify(token)
    if principal is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    return principal


def require_principal(request: Request, credentials: Credentials) -> Principal:
    """The caller; 401 without a valid bearer token."""
    principal = caller(request, credentials.credentials if credentials else None)
    if principal is None:
        raise ApiError(401, "unauthorized", "give a bearer token: Authorization: Bearer <token>")
    return principal


def optional_principal(request: Request, credentials: Credentials) -> Principal | None:
    """The caller if a token was given."""
    return caller(request, credentials.credentials if credentials else None)


#: An endpoint parameter: the caller, required.
Caller = Annotated[Principal, Depends(require_principal)]
#: An endpoint parameter: the caller if a token was given.
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
