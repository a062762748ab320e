"""The FastAPI application: Open311 intake, the native API, their errors, and the runtime's life."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.http import delivery, native, open311, persons, persons_access
from adapters.http.errors import ApiError, describe, error_response, field_problems
from adapters.http.guard import REQUEST_THREADS, Guard
from adapters.http.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

#: Worker threads for request handlers; public reads may take at most GRIDCASE_HTTP_PUBLIC_THREADS of them.
THREADS = REQUEST_THREADS

DESCRIPTION = """\
gridcase's HTTP API (docs/http.md).

* **Open311 GeoReport v2** under `/open311/v2`: the category catalogue as services, complaints filed as service
  requests (the case number is the `service_request_id`), requests and their updates; JSON or XML.
* **Native API** under `/api/v1`: every command of the case, the patrol and the registry, every read-model
  query, and a case's audit history. Bearer tokens from `gridcase token create` carry the actor and the role.
* Errors: 401/403 who may do what, 404 unknown case, 409 `refused` (the domain's words) or `conflict` (a
  concurrent change: retry), 422 `bad_input` naming the field. Open311 errors are the spec's list of
  `code` and `description`.
* `Idempotency-Key` on any POST: a retry with the same key and request returns the first response.
* Public reads (Open311 GETs, tracking, any GET without a token) are rate-limited per client address: 429 with
  `Retry-After`. Every response carries `X-Request-Id`; an unexpected failure is a 500 `internal` naming it.
"""


def create_app(make_runtime: Callable[[], Runtime] | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """The API over the runtime ``make_runtime`` builds at start-up (or a given one).

    Built without either, the app serves nothing but answers for its OpenAPI document.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Made at start-up, not here: building the app (e.g. for its OpenAPI document) touches no database.
        if runtime is None:
            if make_runtime is None:
                msg = "create_app needs a runtime to serve"
                raise RuntimeError(msg)
            app.state.runtime = make_runtime()
        # Writes go one at a time (runtime.WriteGate): a few threads keep the queue full; forty only fight
        # over the interpreter lock.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        app.state.runtime.start()
        try:
            yield
        finally:
            app.state.runtime.close()

    app = FastAPI(title="gridcase", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    # Outermost of ours: request ids, JSON for any unexpected error, the public reads' rate and slots.
    app.add_middleware(Guard)
    app.include_router(open311.router)
    app.include_router(native.router)
    app.include_router(delivery.router)
    app.include_router(persons.router)
    app.include_router(persons_access.router)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        # The first part of a location says where (body, query, path): a field name is what a user needs.
        problems = field_problems(list(error.errors()), skip=1)
        return error_response(request, ApiError(422, "bad_input", f"bad input: {describe(problems)}", problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(request, ApiError(error.status_code, code, str(error.detail)))

    @app.get("/", include_in_schema=False)
    def index() -> dict[str, Any]:
        return {"name": "gridcase", "openapi": "/openapi.json", "docs": "/docs",
                "open311": "/open311/v2/services.json", "native": "/api/v1"}  # fmt: skip

    return app
