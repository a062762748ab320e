"""From an HTTP request to a command: the caller's role and scope, the command model, the outcome as HTTP.

Shared by the native API and Open311 intake.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from adapters.chained import WRITE_MARK
from adapters.http.auth import roles_for
from adapters.http.errors import ApiError, describe, field_problems
from adapters.http.idempotency import (
    MAX_KEY_LENGTH,
    KeyInFlight,
    KeyReused,
    Landed,
    Stored,
    request_hash,
    write_mark,
)
from domain import commands as c
from domain.commands import COMMANDS
from domain.errors import CommandRefused, DomainError, UnknownReference
from service import BadInput, ConcurrentChange

if TYPE_CHECKING:
    from collections.abc import Callable

    from adapters.http.auth import Principal
    from adapters.http.runtime import Runtime
    from service import Result

#: Domain rules about who may act: refused as 403 like the API's own role checks.
PERMISSION_RULES = frozenset(
    {
        "ActorRoleNotAllowed",
        "OnlyTheCurrentHandlerMayDoThis",
        "ReportMustComeFromIntake",
        "OnlyAdministratorsChangeTheRegistry",
        "PatrolIsLoggedByItsWorker",
        "GridWorkerActsOnlyInTheirGrids",
        "DepartmentHandlerActsOnlyOnItsDepartmentsCases",
        "ResolverDoesNotVerifyTheirOwnResolution",
    }
)
def forbidden(message: str) -> ApiError:
    """A 403: the caller's role or scope does not allow it."""
    return ApiError(403, "forbidden", message)


def build(principal: Principal, fields: dict[str, Any]) -> c.AnyCommand:
    """Validate a command's fields, issued as the caller; 403 outside the role, 422 naming bad fields."""
    name = str(fields["command"])
    if principal.role not in roles_for(name):
        raise forbidden(f"role {principal.role.value} may not {name}")
    try:
        command = COMMANDS.validate_python({**fields, "actor": principal.actor.model_dump()})
    except ValidationError as error:
        # The first part of each location is the command's own tag in the union.
        problems = field_problems(error.errors(), skip=1)
        raise ApiError(422, "bad_input", f"bad input: {describe(problems)}", problems) from None
    return command


def run(runtime: Runtime, command: c.AnyCommand) -> Result:
    """Carry the command out; every refusal as its HTTP error (the core judges the caller's scope too)."""
    try:
        return runtime.handle(command)
    except UnknownReference as error:
        addressed = getattr(command, "case_number", None) or getattr(command, "patrol_number", None)
        if error.kind in {"case", "patrol"} and error.code == addressed:
            raise ApiError(404, "not_found", f"unknown {error.kind} {error.code!r}") from None
        raise ApiError(409, "refused", str(error)) from None
    except CommandRefused as error:
        if error.rule in PERMISSION_RULES:
            raise forbidden(str(error)) from None
        raise ApiError(409, "refused", str(error)) from None
    except DomainError as error:
        raise ApiError(409, "refused", str(error)) from None
    except BadInput as error:
        field = str(error).partition(":")[0] if ":" in str(error) else ""
        raise ApiError(422, "bad_input", f"bad input: {error}", [{"field": field, "message": str(error)}]) from None
    except ConcurrentChange as error:
        raise ApiError(409, "conflict", f"conflict: {error}") from None  # names the case and says try again


def idempotent(runtime: Runtime, request: Request, principal: Principal, payload: Any,
               execute: Callable[[], Result], render: Callable[[Result], Response]) -> Response:  # fmt: skip
    """Answer a POST once per ``Idempotency-Key``: a retry of the same request gets the first response.

    ``execute`` carries the command out, ``render`` makes its result the response.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return render(execute())
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(422, "bad_input", f"bad input: Idempotency-Key: 1 to {MAX_KEY_LENGTH} characters",
                       [{"field": "Idempotency-Key", "message": "1 to 255 characters"}])  # fmt: skip
    fingerprint = request_hash(request.method, request.url.path, payload)
    store = runtime.idempotency
    try:
        claimed = store.claim(principal.token_id, key, fingerprint)
    except KeyReused:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"Idempotency-Key {key!r} was used for a different request; use a new key for a new request",
            [{"field": "Idempotency-Key", "message": "used for a different request"}],
        ) from None
    except KeyInFlight:
        message = f"the first request with Idempotency-Key {key!r} is still being handled; retry shortly"
        raise ApiError(409, "idempotency_key_in_flight", message) from None
    if isinstance(claimed, Stored):
        return Response(claimed.body, claimed.status_code, {"Idempotent-Replayed": "true"}, claimed.media_type)
    if isinstance(claimed, Landed):  # stored before a crash, the answer lost: answer from what was stored
        response = render(recovered_result(runtime, payload, claimed.position))
        store.complete(principal.token_id, key, _kept(response))
        response.headers["Idempotent-Replayed"] = "recovered"
        return response
    marked = WRITE_MARK.set(write_mark(principal.token_id, key))
    try:
        response = render(execute())
    except BaseException:
        store.release(principal.token_id, key)
        raise
    finally:
        WRITE_MARK.reset(marked)
    if 200 <= response.status_code < 300:  # noqa: PLR2004
        store.complete(principal.token_id, key, _kept(response))
    else:
        store.release(principal.token_id, key)
    return response


def _kept(response: Response) -> Stored:
    return Stored(response.status_code, response.media_type or "application/json", bytes(response.body).decode())


def recovered_result(runtime: Runtime, payload: Any, position: int) -> Result:
    """The result of a command stored before a crash, from its first stored event and the request.

    Exact for the commands that make something (a case, a patrol): their number is in the event. For the others,
    the numbers the request named, and ``recovered: true``.
    """
    found = runtime.reader.fetch(position)
    state: dict[str, Any] = json.loads(found.state) if found is not None else {}
    topic = found.topic if found is not None else ""
    if topic.endswith("CaseReported"):
        return {"case_number": state["case_number"], "state": "reported"}
    if topic.endswith("PatrolStarted"):
        return {"patrol_number": state["patrol_number"], "state": "started"}
    named = {name: payload[name] for name in ("case_number", "patrol_number", "code") if name in payload}
    return {**named, "recovered": True}


def json_response(content: Any, status: int = 200) -> JSONResponse:
    """JSON with Chinese text as it is."""
    return JSONResponse(json.loads(json.dumps(content, ensure_ascii=False, default=str)), status)
