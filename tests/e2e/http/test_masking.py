"""A phone number and an ID number typed into a complaint's description and address (issue 18, item 4).

Over real HTTP: filed through Open311, they never show on Open311 GET (JSON, XML, the listing), the public track
view, or the published Kafka form the relay makes of the stored events; the staff history shows them as typed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from adapters.kafka.published import split_topic
from adapters.kafka.relay import Relay
from domain.masking import id_check_digit
from tests.support import CATEGORY, GRID

if TYPE_CHECKING:
    from tests.e2e.http.conftest import Api

PHONE, OTHER_PHONE = "13987654321", "0532-85551234"
ID17 = "37020219850615123"
ID_NUMBER = ID17 + id_check_digit(ID17)
DESCRIPTION = f"井盖缺失，请回电 {PHONE}，身份证 {ID_NUMBER}. Call me on {PHONE}."
ADDRESS = f"东海西路 12号 门卫电话{OTHER_PHONE}"
SECRETS = (PHONE, ID_NUMBER, OTHER_PHONE, "85551234")


def _file(api: Api) -> str:
    api.runtime.catalogue.refresh()
    centre = api.runtime.catalogue.centre_of(GRID)
    assert centre is not None
    form = {"service_code": CATEGORY, "description": DESCRIPTION, "address_string": ADDRESS,
            "lat": str(centre[0]), "long": str(centre[1])}  # fmt: skip
    with api.client("operator") as client:
        response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 201, response.text
    return str(response.json()[0]["service_request_id"])


def _published(api: Api) -> list[dict[str, object]]:
    """The value the relay publishes for every stored event (no broker: ``Relay.message``)."""
    recorder = api.runtime.reader.recorder

    def first_event(originator_id: object) -> object:
        found = recorder.select_events(originator_id, limit=1)
        return found[0] if found else None

    relay = Relay(lambda _after, _limit: [], first_event, {}, source="urn:gridcase:sn")
    values = []
    for notification in recorder.select_notifications(start=0, limit=100_000):
        aggregate, name = split_topic(notification.topic)
        value, _ = relay.message(notification, aggregate, name)
        values.append(json.loads(value))
    return values


def test_typed_phone_and_id_numbers_never_show_in_public_but_staff_see_them(api: Api) -> None:
    number = _file(api)
    api.runtime.wait_fresh()
    with api.client() as public, api.client("dispatcher") as dispatcher:
        [request] = public.get(f"/open311/v2/requests/{number}.json").json()
        texts = {
            "open311 json": public.get(f"/open311/v2/requests/{number}.json").text,
            "open311 xml": public.get(f"/open311/v2/requests/{number}.xml").text,
            "open311 listing": public.get("/open311/v2/requests.json", params={"service_request_id": number}).text,
            "open311 updates": public.get(
                "/open311/v2/servicerequestupdates.json", params={"service_request_id": number}
            ).text,
            "track": public.get(
                f"/api/v1/track/{number}", params={"code": api.runtime.service.check_code(number)}
            ).text,
            "staff status row": dispatcher.get(f"/api/v1/cases/{number}").text,
        }
        history = dispatcher.get(f"/api/v1/cases/{number}/history").json()
    [reported] = [value for value in _published(api) if value.get("case_number") == number and "description" in value]
    texts["kafka"] = json.dumps(reported, ensure_ascii=False)

    leaks = {where: secret for where, text in texts.items() for secret in SECRETS if secret in text}
    assert leaks == {}
    # GeoReport v2 clients get the description back, masked.
    assert request["description"] == (
        "井盖缺失，请回电 139****4321，身份证 3702**********" + ID_NUMBER[-4:] + ". Call me on 139****4321."
    )
    assert request["address"] == "东海西路 12号 门卫电话0532-****1234"
    assert reported["description"] == request["description"]
    assert reported["location"]["address"] == request["address"]  # type: ignore[index]
    # Staff read the stored text, as typed.
    data = history["events"][0]["data"]
    assert data["description"] == DESCRIPTION
    assert data["location"]["address"] == ADDRESS
