"""Open311 GeoReport v2: the catalogue as services, complaints as service requests, and their updates.

Our lifecycle maps onto Open311's two statuses: ``closed`` for closed, rejected
and merged cases, ``open`` for every other state; our own state is in
``status_notes`` and, with level, grid, channel and urgency, in
``extended_attributes``. Times are W3C datetimes in the district's time zone
with its offset. This is a public view: the reporter's contact is not shown;
the description and the address are shown masked (phone, ID numbers and
e-mail addresses typed into them, domain.masking; docs/privacy.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from adapters.http.deps import Credentials, caller, runtime_of
from adapters.http.errors import ApiError
from adapters.http.execution import build, idempotent, run
from adapters.http.xml import to_xml
from domain.bounds import moment_problem, text_problem
from domain.personal_data import public_place
from projections.case_status import CLOSED_STATES, OPEN_STATES, STATE_AFTER, case_status, case_timeline

if TYPE_CHECKING:
    from sqlalchemy import Select

    from adapters.http.runtime import Runtime

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])

Format = Annotated[Literal["json", "xml"], Path(description="json or xml")]
#: Events that move a case through its public life: one service request update each.
PUBLIC_CHANGES = ("CaseReported", *STATE_AFTER)
#: The most items a page holds: a listing is a public read, and a big page is what starved intake (issue 13).
MAX_PAGE_SIZE = 200
URGENCIES = ("normal", "urgent")

Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page (at most {MAX_PAGE_SIZE})")]
W3cTime = Annotated[str | None, Query(max_length=40, description="W3C datetime, e.g. 2021-06-01T00:00:00+08:00")]


def _respond(content: list[dict[str, Any]], fmt: str, root: str, item: str, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(to_xml(root, item, content), status, media_type="application/xml")
    return JSONResponse(content, status)


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_input", message)


def _w3c(moment: datetime | None, runtime: Runtime) -> str | None:
    """Read models keep naive UTC; Open311 shows local time with its offset."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).astimezone(runtime.settings.tz).isoformat()


def _parse_time(text: str | None, name: str, runtime: Runtime) -> datetime | None:
    """A W3C datetime (a time without offset is district local time) as naive UTC."""
    if text is None:
        return None
    try:
        moment = None if text.strip().lstrip("+-").isdigit() else datetime.fromisoformat(text)  # no Unix seconds
    except ValueError:
        moment = None
    if moment is None:
        raise _bad(f"{name}: {text!r} is not a W3C datetime")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=runtime.settings.tz)
    problem = moment_problem(moment)
    if problem is not None:
        raise _bad(f"{name}: {text!r} {problem}")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


# -- services ------------------------------------------------------------------------


def _service(category: dict[str, Any]) -> dict[str, Any]:
    return {
        "service_code": category["code"],
        "service_name": f"{category['name_en']} ({category['name']})",
        "description": f"{category['group_name_en']} / {category['name_en']} "
        f"({category['group_name']} / {category['name']}); SLA class {category['sla_class']}",
        "metadata": True,
        "type": "realtime",
        "keywords": f"{category['group']}, {category['name_en']}",
        "group": f"{category['group_name_en']} ({category['group_name']})",
    }


@router.get("/services.{response_format}")
def services(request: Request, response_format: Format) -> Response:
    """The category catalogue as Open311 services."""
    catalogue = runtime_of(request).catalogue
    catalogue.refresh()
    listed = [_service(catalogue.categories[code]) for code in sorted(catalogue.categories)]
    return _respond(listed, response_format, "services", "service")


@router.get("/services/{service_code}.{response_format}")
def service_definition(request: Request, service_code: Annotated[str, Path(max_length=64)],
                       response_format: Format) -> Response:  # fmt: skip
    """A service's definition: the extra attributes a request may carry."""
    catalogue = runtime_of(request).catalogue
    catalogue.refresh()
    if service_code not in catalogue.categories:
        raise ApiError(404, "not_found", f"service_code {service_code!r} is not in the catalogue")
    definition = {
        "service_code": service_code,
        "attributes": [
            {"variable": True, "code": "grid", "datatype": "string", "required": False, "order": 1,
             "datatype_description": "A grid code, e.g. SN08-C01-G004",
             "description": "The grid it is in, if known (otherwise found from lat/long or the address)"},
            {"variable": True, "code": "urgency", "datatype": "singlevaluelist", "required": False, "order": 2,
             "datatype_description": None, "description": "How urgent it is",
             "values": [{"key": "normal", "name": "normal"}, {"key": "urgent", "name": "urgent"}]},
        ],
    }  # fmt: skip
    if response_format == "xml":
        wrapped = to_xml("service_definitions", "service_definition", [definition])
        single = wrapped.replace("<service_definitions><service_definition>", "<service_definition>")
        single = single.replace("</service_definition></service_definitions>", "</service_definition>")
        return Response(single, media_type="application/xml")
    return JSONResponse(definition)


# -- filing a request ----------------------------------------------------------------

OptionalText = Annotated[str | None, Form(max_length=500)]


@router.post("/requests.{response_format}", status_code=201)
def create_request(
    request: Request,
    response_format: Format,
    credentials: Credentials,
    service_code: Annotated[str, Form(min_length=1, max_length=64)],
    description: Annotated[str | None, Form(max_length=4000)] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    long: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address_string: OptionalText = None,
    address_id: Annotated[str | None, Form(max_length=64)] = None,
    email: OptionalText = None,
    device_id: OptionalText = None,
    account_id: OptionalText = None,
    first_name: Annotated[str | None, Form(max_length=50)] = None,
    last_name: Annotated[str | None, Form(max_length=50)] = None,
    phone: Annotated[str | None, Form(max_length=40)] = None,
    media_url: OptionalText = None,
    api_key: Annotated[str | None, Form(max_length=200)] = None,
    grid: Annotated[str | None, Form(alias="attribute[grid]", max_length=64)] = None,
    urgency: Annotated[Literal["normal", "urgent"] | None, Form(alias="attribute[urgency]")] = None,
) -> Response:
    """File a complaint (one number for every channel); answers with the case number as ``service_request_id``.

    Needs an intake token (``api_key`` or a bearer token). Location: ``attribute[grid]``, ``address_id`` (a
    grid code), an address naming a grid, or lat/long inside the district (docs/http.md).
    """
    texts = {"service_code": service_code, "address_string": address_string, "address_id": address_id,
             "email": email, "device_id": device_id, "account_id": account_id, "first_name": first_name,
             "last_name": last_name, "phone": phone, "media_url": media_url, "attribute[grid]": grid}  # fmt: skip
    _check_texts({"description": description}, multiline=True)
    _check_texts(texts, multiline=False)  # named as the form has them, before they become the command's fields
    runtime = runtime_of(request)
    principal = caller(request, api_key or (credentials.credentials if credentials else None))
    if principal is None:
        raise ApiError(403, "forbidden", "api_key: give an intake token as api_key or a bearer token")
    catalogue = runtime.catalogue
    catalogue.refresh()
    if service_code not in catalogue.categories:
        raise ApiError(404, "not_found", f"service_code {service_code!r} is not in the catalogue")
    if (lat is None) != (long is None):
        raise _bad("lat, long: give both or neither")
    found = _locate(runtime, grid, address_id, address_string, lat, long)
    name = " ".join(part for part in (first_name, last_name) if part) or None
    category = catalogue.categories[service_code]
    # GeoReport v2 makes the description optional; a case keeps one, so a request without it says what it is.
    given = description if description and description.strip() else None
    said = given or f"{category['name']} ({category['name_en']}); no description given"
    text = said if not media_url else f"{said}\nmedia: {media_url}"
    fields: dict[str, Any] = {
        "command": "case.report",
        "channel": principal.channel.value,
        "category": service_code,
        "grid": found,
        "description": text,
        "urgency": urgency or "normal",
        "location": {"address": address_string, "lat": lat, "lon": long},
        "reporter": {"name": name, "phone": phone} if name or phone else None,
    }

    def respond(result: dict[str, Any]) -> Response:
        # GeoReport v2 ``token``: the citizen's check code, which the public track view asks for (docs/http.md).
        answer = [{"service_request_id": result["case_number"], "token": result.get("check_code"),
                   "account_id": account_id,
                   "service_notice": f"registered as case {result['case_number']}; track it at "
                                     f"/open311/v2/requests/{result['case_number']}.json"}]  # fmt: skip
        return _respond(answer, response_format, "service_requests", "request", 201)

    return idempotent(runtime, request, principal, {"format": response_format, **fields},
                      lambda: run(runtime, build(principal, fields)), respond)  # fmt: skip


def _check_texts(fields: dict[str, str | None], *, multiline: bool) -> None:
    """A form field the domain could not show (a lone surrogate, a control character) is a 400 naming it.

    The same check as the command models' (domain.bounds.text_problem); done here too so the error names
    the Open311 field (``first_name``, not ``reporter.name``), and for the fields the engine does not keep
    but answers with (``account_id``) or could log.
    """
    for name, value in fields.items():
        problem = None if value is None else text_problem(value, multiline=multiline)
        if problem is not None:
            raise _bad(f"bad input: {name}: {problem}")


def _locate(runtime: Runtime, grid: str | None, address_id: str | None, address: str | None,
            lat: float | None, lon: float | None) -> str:  # fmt: skip
    catalogue = runtime.catalogue
    for code in (grid, address_id):
        if code is not None:
            if not catalogue.is_grid(code):
                raise _bad(f"{'attribute[grid]' if code == grid else 'address_id'}: {code!r} is not a grid")
            return code
    if address:
        named = catalogue.grid_for_address(address)
        if named is not None:
            return named
    if lat is not None and lon is not None:
        located = catalogue.grid_at(lat, lon)
        if located is not None:
            return located
        raise _bad(f"lat, long: ({lat}, {lon}) is outside the district: in no grid")
    raise _bad("location: give lat and long inside the district, an address naming a grid, or attribute[grid]")


# -- reading requests ----------------------------------------------------------------


def _agency(row: Any, runtime: Runtime) -> str | None:
    catalogue = runtime.catalogue
    if row.handler_kind == "department":
        return catalogue.unit_name(row.handler_id)
    if row.handler_kind == "worker":
        return f"grid worker of {catalogue.unit_name(row.grid)}"
    return f"governance centre of {catalogue.unit_name(row.street)}"


def request_view(row: Any, runtime: Runtime) -> dict[str, Any]:
    """A case as an Open311 service request (public: description and address masked, no reporter)."""
    category = runtime.catalogue.categories.get(row.category)
    notes = row.state if row.merged_into is None else f"{row.state} into {row.merged_into}"
    shown = None if category is None else bool(category.get("location_public", True))
    address, lat, lon = public_place(shown, row.address, row.lat, row.lon)  # only the grid for a dispute, a visit
    return {
        "service_request_id": row.case_number,
        "status": "closed" if row.state in CLOSED_STATES else "open",
        "status_notes": notes,
        "service_name": f"{category['name_en']} ({category['name']})" if category else row.category,
        "service_code": row.category,
        "description": row.description,
        "agency_responsible": _agency(row, runtime),
        "service_notice": None,
        "requested_datetime": _w3c(row.reported_at, runtime),
        "updated_datetime": _w3c(row.last_event_at, runtime),
        "expected_datetime": _w3c(row.resolve_by, runtime),
        "address": address,
        "address_id": row.grid,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": None,
        "extended_attributes": {
            "state": row.state,
            "level": row.level,
            "grid": row.grid,
            "community": row.community,
            "street": row.street,
            "channel": row.channel,
            "urgency": row.urgency,
            "merged_into": row.merged_into,
        },
    }


def _page(query: Select[Any], page: int, page_size: int) -> Select[Any]:
    return query.limit(page_size).offset((page - 1) * page_size)


@router.get("/requests.{response_format}")
def list_requests(
    request: Request,
    response_format: Format,
    service_request_id: Annotated[str | None, Query(max_length=2000, description="Comma-separated ids")] = None,
    service_code: Annotated[str | None, Query(max_length=2000, description="Comma-separated codes")] = None,
    start_date: W3cTime = None,
    end_date: W3cTime = None,
    status: Annotated[str | None, Query(max_length=20, description="open, closed or open,closed")] = None,
    page: Page = 1,
    page_size: PageSize = 50,
) -> Response:
    """Service requests, newest first, filtered by id, service code, status and requested time; paged."""
    runtime = runtime_of(request)
    statuses = _list(status)
    if any(s not in {"open", "closed"} for s in statuses):
        raise _bad(f"status: {status!r} is not open, closed or open,closed")
    start = _parse_time(start_date, "start_date", runtime)
    end = _parse_time(end_date, "end_date", runtime)
    query = select(case_status).order_by(case_status.c.reported_at.desc(), case_status.c.case_number.desc())
    if ids := _list(service_request_id):
        query = query.where(case_status.c.case_number.in_(ids))
    if codes := _list(service_code):
        query = query.where(case_status.c.category.in_(codes))
    if statuses and len(set(statuses)) == 1:
        query = query.where(case_status.c.state.in_(CLOSED_STATES if statuses[0] == "closed" else OPEN_STATES))
    if start is not None:
        query = query.where(case_status.c.reported_at >= start)
    if end is not None:
        query = query.where(case_status.c.reported_at <= end)
    runtime.wait_fresh()
    runtime.catalogue.refresh()
    with runtime.engine.connect() as connection:
        rows = connection.execute(_page(query, page, page_size)).all()
    return _respond([request_view(row, runtime) for row in rows], response_format, "service_requests", "request")


@router.get("/requests/{service_request_id}.{response_format}")
def get_request(request: Request, service_request_id: Annotated[str, Path(max_length=32)],
                response_format: Format) -> Response:  # fmt: skip
    """One service request by its id (the case number)."""
    runtime = runtime_of(request)
    runtime.wait_fresh()
    runtime.catalogue.refresh()
    with runtime.engine.connect() as connection:
        row = connection.execute(select(case_status).where(case_status.c.case_number == service_request_id)).first()
    if row is None:
        raise ApiError(404, "not_found", f"service_request_id {service_request_id!r} is unknown")
    return _respond([request_view(row, runtime)], response_format, "service_requests", "request")


@router.get("/servicerequestupdates.{response_format}")
def request_updates(
    request: Request,
    response_format: Format,
    service_request_id: Annotated[str | None, Query(max_length=2000, description="Comma-separated ids")] = None,
    start_date: W3cTime = None,
    end_date: W3cTime = None,
    page: Page = 1,
    page_size: PageSize = 50,
) -> Response:
    """One update per public state change (update_id, status, description, updated_datetime), oldest first."""
    runtime = runtime_of(request)
    start = _parse_time(start_date, "start_date", runtime)
    end = _parse_time(end_date, "end_date", runtime)
    query = (
        select(case_timeline)
        .where(case_timeline.c.event.in_(PUBLIC_CHANGES))
        .order_by(case_timeline.c.occurred_at, case_timeline.c.case_number, case_timeline.c.version)
    )
    if ids := _list(service_request_id):
        query = query.where(case_timeline.c.case_number.in_(ids))
    if start is not None:
        query = query.where(case_timeline.c.occurred_at >= start)
    if end is not None:
        query = query.where(case_timeline.c.occurred_at <= end)
    runtime.wait_fresh()
    with runtime.engine.connect() as connection:
        rows = connection.execute(_page(query, page, page_size)).all()
    updates = [
        {
            "update_id": f"{row.case_number}:{row.version}",
            "service_request_id": row.case_number,
            "status": "closed" if row.state in CLOSED_STATES else "open",
            "status_notes": row.state,
            "description": row.note or f"{row.state.replace('_', ' ')}",
            "updated_datetime": _w3c(row.occurred_at, runtime),
            "media_url": None,
        }
        for row in rows
    ]
    return _respond(updates, response_format, "service_request_updates", "request_update")
