"""How failures look on the wire.

Native API: ``{"error": {"code", "message", "fields"?}}`` with 401/403 (who), 404
(unknown case or patrol), 409 ``refused`` (the domain's words) or 409
``conflict`` (a concurrent change: try again), 422 ``bad_input`` naming each
field. Open311: the spec's list of ``{"code", "description"}`` (or ``<errors>``
in XML), with the HTTP status as the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from adapters.http.xml import error_xml

if TYPE_CHECKING:
    from fastapi import Request, Response
    from pydantic_core import ErrorDetails


class ApiError(Exception):
    """A request the API answers with an error."""

    def __init__(self, status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def field_problems(errors: list[ErrorDetails] | list[Any], *, skip: int = 0) -> list[dict[str, str]]:
    """Each wrong field of a validation error, by its dotted path (``skip`` leading parts left out)."""
    problems = []
    for problem in errors:
        parts = [str(p) for p in problem["loc"][skip:] if not str(p).startswith("function-")]
        problems.append({"field": ".".join(parts), "message": str(problem["msg"])})
    return problems


def describe(problems: list[dict[str, str]]) -> str:
    """One line naming each wrong field."""
    return "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:5])


def is_open311(request: Request) -> bool:
    """Whether a request is on the Open311 side."""
    return request.url.path.startswith("/open311/")


def error_response(request: Request, error: ApiError) -> Response:
    """The error in the form the request's side of the API uses."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None  # noqa: PLR2004
    if is_open311(request):
        status = 400 if error.status == 422 else error.status  # noqa: PLR2004 - the spec's code for bad input
        if request.url.path.endswith(".xml"):
            from fastapi import Response  # noqa: PLC0415

            return Response(error_xml(status, error.message), status, headers, media_type="application/xml")
        return JSONResponse([{"code": status, "description": error.message}], status, headers)
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    return JSONResponse({"error": body}, error.status, headers)
