"""The engine's application service: commands in, plain values out.

Entry points (CLI, ``apply``, HTTP, the simulator) build a command model and
call :meth:`Service.handle`; it returns ids and plain values, never aggregates.
The service is given the store and plain values, not the settings.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import structlog
from pydantic import ValidationError

from domain.base import RECORDING_CLOCK
from domain.case import Case, case_id
from domain.case_values import normalise_phone
from domain.errors import DomainError, UnknownReference
from domain.personal import Erasure, LookupKind, check_erasure
from domain.personal_data import check_may_see_personal_data, reason_problem
from domain.registry import category_id, org_unit_id, worker_id
from service import cases, patrols, registry
from service.check_code import check_code, matches
from service.errors import BadInput
from service.handling import Handlers, Handling, Result
from service.numbers import NumberIssuer
from service.ports import AccessRecord
from service.unit_of_work import DEFAULT_MAX_EVENT_BYTES, EventTooLarge, UnitOfWork
from service.views import CaseView, history_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any
    from zoneinfo import ZoneInfo

    from domain import commands as c
    from domain.base import ActorRef
    from service.ports import AccessLog, EventStore, PersonalVault, Via

log = structlog.get_logger("gridcase")

HANDLERS = Handlers({**cases.handlers, **patrols.handlers, **registry.handlers})


class Service:
    """Carries out commands against the event store and answers what the write side knows."""

    def __init__(self, store: EventStore, *, tz: ZoneInfo, case_prefix: str = "SN", patrol_prefix: str = "PT",
                 clock: Callable[[], datetime] | None = None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 access_log: AccessLog | None = None, vault: PersonalVault | None = None,
                 check_code_secret: bytes = b"") -> None:  # fmt: skip
        self.tz = tz
        self._check_code_secret = check_code_secret
        #: Where clear views of personal data are recorded; without one, none is given.
        self.access_log = access_log
        #: Opens and erases personal data (None: a store without sealing, e.g. a bare test store).
        self.vault = vault
        self.work = UnitOfWork(store, max_event_bytes=max_event_bytes)
        self.numbers = NumberIssuer(self.work)
        self._handling = Handling(
            self.work, self.numbers, tz, case_prefix, patrol_prefix, clock or (lambda: datetime.now(UTC))
        )

    @property
    def clock(self) -> Callable[[], datetime]:
        """The engine's clock: ``occurred_at`` defaults to it and may not lie beyond it."""
        return self._handling.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self._handling.clock = clock

    # -- commands ---------------------------------------------------------------

    def handle(self, command: c.AnyCommand) -> Result:
        """Carry out one command; raise a domain error (nothing written) if it is refused."""
        handler = HANDLERS.get(type(command))
        if handler is None:
            msg = f"unknown command {type(command).__name__}"
            raise BadInput(msg)
        try:
            result: Result = handler(self._handling, command)
        except ValidationError as error:
            raise out_of_bounds(error) from None
        except EventTooLarge as error:
            raise BadInput(f"{command.command}: {error}") from None
        if command.command == "case.report" and "case_number" in result:
            result = {**result, "check_code": self.check_code(str(result["case_number"]))}
        log.info("command", command=command.command, actor=command.actor.id, **result)
        return result

    def check_code(self, number: str) -> str:
        """The check code printed on the citizen's receipt for this case number (derived, never stored)."""
        return check_code(self._check_code_secret, number)

    def track(self, number: str, code: str | None) -> str:
        """The number a citizen's number leads to, if the check code is the number's own.

        A wrong or missing code is refused exactly like an unknown number (:class:`UnknownReference`), so an
        answer tells a guesser nothing.
        """
        if not matches(self._check_code_secret, number, code):
            raise UnknownReference("case", number, command="case.track")
        return self.resolve_number(number)

    def migrate_case(self, command: c.ReportCase, case_number: str) -> Result:
        """File a case from an older system under its old number: a migration (system or admin), never intake.

        The number must be one this engine could have issued (the district's prefix, a real day, a sequence
        from 000001) and unused; later numbers of that day follow it. Intake (``case.report`` from the CLI,
        ``apply``, HTTP, Open311) cannot choose a number at all.
        """
        try:
            result = cases.migrate(self._handling, command, case_number)
        except ValidationError as error:
            raise out_of_bounds(error) from None
        log.info("command", command="case.migrate", actor=command.actor.id, **result)
        return result

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Carry out every command inside as one transaction: all of it is saved, or (if one is refused) none."""
        numbers_before = self.numbers.remembered()
        try:
            with self.work.batch():
                yield
        except BaseException:
            # Nothing of a refused batch is written, so none of its numbers were issued.
            self.numbers.restore(numbers_before)
            raise

    # -- what the write side knows ---------------------------------------------

    def case(self, number: str) -> CaseView:
        """The case as it stands now (its own number, not followed to a master)."""
        return CaseView.of(self._case(number, "case.show"))

    def resolve_number(self, number: str) -> str:
        """The number of the case a citizen's number leads to, following merges."""
        seen = {number}
        case = self._case(number, "case.lookup")
        while case.merged_into is not None and case.merged_into not in seen:
            seen.add(case.merged_into)
            case = self._case(case.merged_into, "case.lookup")
        return case.case_number

    def history(self, number: str, *, personal_data: bool = False, viewer: ActorRef | None = None,
                reason: str | None = None, via: Via = "cli") -> list[dict[str, Any]]:  # fmt: skip
        """Every event of a case, oldest first; the reporter's personal data masked unless asked for.

        A clear view (``personal_data``) is for auditors and admins, with a reason; it is recorded in the
        access log before anything is returned (:meth:`clear_view`).
        """
        if personal_data:
            self._check_clear_view(viewer, reason)
        events = list(self.work.store.events_of(case_id(number)))
        if not events:  # the id is the number's own: no events, no case
            raise UnknownReference("case", number, command="case.history")
        if personal_data:
            self.clear_view(number, viewer=viewer, reason=reason, via=via)
        return history_rows(events, personal_data=personal_data, vault=self.vault)

    def erase_person(self, lookup: LookupKind, value: str, *, reason: str, actor: ActorRef) -> Result:
        """Erase a citizen's personal data: delete their key (by phone or ID number) and record that it was done.

        Admin only, with a reason. Every value sealed under the key becomes unreadable ("erased" in every view);
        events, chain, projections and reviews stay as they are. Returns the cases affected; ``erased`` is 0 when
        nothing is stored under that phone or ID number (never given, or erased already).
        """
        check_erasure(actor, reason)
        if self.vault is None:
            raise BadInput("person.erase: this store keeps no personal data keys")
        value = normalise_phone(value) if lookup is LookupKind.PHONE else value.strip().upper()
        if not value:
            raise BadInput(f"person.erase: give a {lookup.value.replace('_', ' ')}")
        found = self.vault.subjects(lookup, value)
        if not found:
            return {"erased": 0, "lookup": lookup.value, "case_numbers": []}
        at = self.clock()
        erasures, all_numbers = [], set()
        for subject, aggregates in found.items():
            numbers = sorted({n for n in (self._number_of(a) for a in aggregates) if n is not None})
            all_numbers.update(numbers)
            erasures.append(Erasure.erase(subject=subject, lookup=lookup, reason=reason, case_numbers=tuple(numbers),
                                          actor=actor, at=at))  # fmt: skip
        self.vault.stage_erasure(list(found))
        self.work.store.save(*erasures)
        self.vault.scrub()
        log.info("command", command="person.erase", actor=actor.id, erased=len(found), cases=len(all_numbers))
        return {"erased": len(found), "lookup": lookup.value, "case_numbers": sorted(all_numbers)}

    def _number_of(self, aggregate_id: str) -> str | None:
        if not self.work.exists(UUID(aggregate_id)):
            return None
        number = getattr(self.work.store.get(UUID(aggregate_id)), "case_number", None)
        return number if isinstance(number, str) else None

    def clear_view(self, number: str, *, viewer: ActorRef | None, reason: str | None, via: Via) -> AccessRecord:
        """Allow one clear view of a case's personal data and record it; refused (nothing recorded) otherwise.

        Refused as ``OnlyAuditorsAndAdminsSeePersonalData`` for any other role, as bad input naming ``reason``
        without a reason. The record is committed before this returns: if it cannot be written, it raises and
        the caller shows nothing. An unknown case is refused (``ReferenceMustExist``), nothing recorded.
        """
        self._check_clear_view(viewer, reason)
        if not self.work.exists(case_id(number)):
            raise UnknownReference("case", number, command="case.history")
        assert viewer is not None
        assert reason is not None
        if self.access_log is None:
            msg = "no access log to record a clear view of personal data in: nothing is shown in clear"
            raise RuntimeError(msg)
        entry = AccessRecord(actor_id=viewer.id, role=viewer.role.value, case_number=number, reason=reason.strip(),
                             via=via, recorded_at=RECORDING_CLOCK.get()())  # fmt: skip
        self.access_log.record(entry)
        log.info("personal data shown", case_number=number, actor=viewer.id, role=viewer.role.value, via=via)
        return entry

    def access_records(self, *, viewer: ActorRef | None, case_number: str | None = None,
                       since: datetime | None = None) -> list[AccessRecord]:  # fmt: skip
        """Who saw personal data in clear, oldest first (auditors and admins only)."""
        check_may_see_personal_data(viewer, "read the personal data access log")
        if self.access_log is None:
            return []
        return list(self.access_log.entries(case_number=case_number, since=since))

    @staticmethod
    def _check_clear_view(viewer: ActorRef | None, reason: str | None) -> None:
        check_may_see_personal_data(viewer)
        problem = reason_problem(reason)
        if problem is not None:
            raise BadInput(f"reason: {problem}")

    def case_exists(self, number: str) -> bool:
        """Whether a case of this number was ever filed."""
        return self.work.exists(case_id(number))

    def is_department(self, code: str) -> bool:
        """Whether this code is a department (职能部门) in the registry."""
        try:
            self._handling.department(code, "department.lookup")
        except DomainError:
            return False
        return True

    def registered(self, kind: str, code: str) -> bool:
        """Whether the registry holds this org unit (``org_unit``) or category (``category``) code."""
        ids = {"org_unit": org_unit_id, "category": category_id}
        return self.work.exists(ids[kind](code))

    def worker_registered(self, code: str) -> bool:
        """Whether a worker of this code was ever registered."""
        return self.work.exists(worker_id(code))

    def _case(self, number: str, command: str) -> Case:
        return cases.load_case(self._handling, number, command)


def out_of_bounds(error: ValidationError) -> BadInput:
    """An event the domain decided breaks a bound (domain.bounded): bad input naming the field, nothing written.

    The command's own fields are checked before; this catches what a command leads to (a deadline past the
    window, a text the domain composed).
    """
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(p) for p in problem["loc"] if not str(p).startswith("function-"))
        parts.append(f"{where}: {problem['msg']}" if where else str(problem["msg"]))
    return BadInput("; ".join(parts))
