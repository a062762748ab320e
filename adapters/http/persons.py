"""``POST /api/v1/persons/erase``: erase a citizen's personal data (admins; docs/privacy.md).

The body names the citizen by ``phone`` or ``id_number`` and gives the ``reason``; the answer says how many
citizens' keys were deleted and which cases held their data (``erased`` 0: nothing stored under it, or erased
already). Other roles get 403, the rule being the core's (``domain.personal.check_erasure``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.http.deps import Caller, runtime_of
from adapters.http.errors import ApiError
from adapters.http.execution import forbidden, json_response
from domain.bounded import IdNumber, Phone, Reason
from domain.errors import CommandRefused, DomainError
from domain.personal import LookupKind
from service import BadInput

router = APIRouter(prefix="/api/v1")


class ErasePerson(BaseModel):
    """Whose personal data to erase (by exactly one of phone and ID number), and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phone: Phone | None = None
    id_number: IdNumber | None = None
    reason: Annotated[Reason, Field(min_length=1)]

    @model_validator(mode="after")
    def _one_handle(self) -> ErasePerson:
        if (self.phone is None) == (self.id_number is None):
            msg = "give exactly one of phone and id_number"
            raise ValueError(msg)
        return self


@router.post("/persons/erase", tags=["personal data"])
def erase_person(request: Request, body: ErasePerson, principal: Caller) -> Response:
    """Delete a citizen's data key: every value sealed under it reads "erased" from now on (admins only)."""
    runtime = runtime_of(request)
    lookup, value = (LookupKind.PHONE, body.phone) if body.phone is not None else (LookupKind.ID_NUMBER, body.id_number)
    assert value is not None
    try:
        with runtime.gate:
            result = runtime.service.erase_person(lookup, value, reason=body.reason, actor=principal.actor)
    except CommandRefused as error:
        if error.rule == "OnlyAnAdminErases":
            raise forbidden(str(error)) from None
        raise ApiError(422, "bad_input", f"bad input: {error.message}") from None
    except DomainError as error:
        raise ApiError(409, "refused", str(error)) from None
    except BadInput as error:
        raise ApiError(422, "bad_input", f"bad input: {error}") from None
    return json_response(result)
