"""``gridcase person``: a citizen's personal data: ``erase`` deletes their key (docs/privacy.md).

``person erase --phone P | --id-number N --reason TEXT`` is for admins (``--role admin``; any other role exits 3).
It prints how many cases held the citizen's data; a phone or ID number with nothing stored under it (never given,
or erased already) exits 1 with a message saying so: erasing twice is harmless.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from adapters.cli.common import ActorOpt, Exit, JsonOpt, RoleOpt, emit, fail, load_settings, opened_service, out
from domain.base import ActorRef
from domain.errors import DomainError
from domain.personal import LookupKind
from service import BadInput

person_app = typer.Typer(help="A citizen's personal data: erase it (admins).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``person`` group to the ``gridcase`` program."""
    app.add_typer(person_app, name="person")


@person_app.command("erase")
def erase(
    reason: Annotated[str, typer.Option("--reason", help="Why (the citizen's request, a court order …); required")],
    phone: Annotated[str | None, typer.Option("--phone", help="The citizen's phone number")] = None,
    id_number: Annotated[str | None, typer.Option("--id-number", help="The citizen's ID card number")] = None,
    actor: ActorOpt = None,
    role: RoleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase a citizen's personal data from every case: their key is deleted, every view shows "erased"."""
    if (phone is None) == (id_number is None):
        fail(Exit.BAD_INPUT, "bad input: give exactly one of --phone and --id-number")
    if not actor or not role:
        fail(Exit.BAD_INPUT, "bad input: actor: give --actor and --role (or GRIDCASE_ACTOR and GRIDCASE_ROLE)")
    try:
        who = ActorRef.model_validate({"id": actor, "role": role})
    except ValidationError:
        fail(Exit.BAD_INPUT, f"bad input: actor: {actor!r} with role {role!r} is not an actor")
    lookup, value = (LookupKind.PHONE, phone) if phone is not None else (LookupKind.ID_NUMBER, id_number)
    assert value is not None
    settings = load_settings()
    with opened_service(settings) as service:
        try:
            result = service.erase_person(lookup, value, reason=reason, actor=who)
        except DomainError as error:
            fail(Exit.REFUSED, f"refused: {error.message}")
        except BadInput as error:
            fail(Exit.BAD_INPUT, f"bad input: {error}")
    handle = "phone number" if lookup is LookupKind.PHONE else "ID number"
    if as_json:
        emit(result, ensure_ascii=False)
    if not result["erased"]:
        fail(Exit.FOUND, f"nothing to erase: no personal data is stored under this {handle} "
                         "(never given, or erased already) / 无可删除的个人信息")  # fmt: skip
    if not as_json:
        numbers = result["case_numbers"]
        out.print(f"erased the personal data of {result['erased']} citizen(s) under this {handle} from "
                  f"{len(numbers)} case(s) / 已删除 {len(numbers)} 件案件中的个人信息: {', '.join(numbers)}",
                  markup=False, highlight=False)  # fmt: skip
