"""Who saw personal data in clear: ``GET /api/v1/persons/access-log`` (auditors and admins).

Every clear view (``history?personal_data=true``, the CLI's ``--personal-data``, the audit export) is a row
of the access log (docs/privacy.md); this route reads it. The rule of who may is the service's.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from adapters.access_log import as_row
from adapters.http.deps import Caller, runtime_of
from adapters.http.errors import ApiError
from adapters.http.execution import forbidden, json_response
from domain.bounds import moment_problem
from domain.personal_data import OnlyAuditorsAndAdminsSeePersonalData

if TYPE_CHECKING:
    from datetime import tzinfo

router = APIRouter(prefix="/api/v1")

CASE_NUMBER = r"^[A-Z]{2,6}-\d{8}-\d{6}$"


def reason_refused(error: Exception) -> ApiError:
    """A clear view asked for without a fit reason: 422 naming ``reason``."""
    message = str(error).removeprefix("reason: ")
    return ApiError(422, "bad_input", f"bad input: reason: {message}", [{"field": "reason", "message": message}])


@router.get("/persons/access-log", tags=["audit"])
def access_log(
    request: Request,
    principal: Caller,
    case_number: Annotated[str | None, Query(pattern=CASE_NUMBER, description="Only views of this case")] = None,
    since: Annotated[
        str | None,
        Query(max_length=40, description="Only views from this day or time on (ISO 8601; no offset: district time)"),
    ] = None,
) -> Response:
    """Every clear view of personal data, oldest first: who (id, role), when, which case, why, through what."""
    runtime = runtime_of(request)
    tz = runtime.settings.tz
    start = since_moment(since, tz)
    try:
        records = runtime.service.access_records(viewer=principal.actor, case_number=case_number, since=start)
    except OnlyAuditorsAndAdminsSeePersonalData as error:
        raise forbidden(str(error)) from None
    return json_response({"entries": [as_row(record, tz) for record in records]})


def since_moment(text: str | None, tz: tzinfo) -> datetime | None:
    """``since`` as a moment: ISO 8601, a day or a time, no offset meaning district time; 422 naming it otherwise."""
    if text is None:
        return None
    try:
        # Unix seconds are refused, as everywhere: a bare number is a mistake more often than a time.
        found = None if text.strip().lstrip("+-").isdigit() else datetime.fromisoformat(text)
    except ValueError:
        found = None
    if found is not None and found.tzinfo is None:
        found = found.replace(tzinfo=tz)
    problem = "is not an ISO 8601 day or time (e.g. 2021-06-01)" if found is None else moment_problem(found)
    if problem is not None:
        raise ApiError(422, "bad_input", f"bad input: since: {text!r} {problem}",
                       [{"field": "since", "message": f"{text!r} {problem}"}])  # fmt: skip
    return found
