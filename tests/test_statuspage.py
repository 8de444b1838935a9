"""The Statuspage client against a local server speaking the documented API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from pagerd.notifiers.base import DeliveryError
from pagerd.notifiers.statuspage import StatuspageClient, StatuspageError

from fake_statuspage import FakeStatuspage
from helpers import free_port, serve_app


@dataclass
class Setup:
    """A running fake, a client on it, the component ids and the delays slept."""

    fake: FakeStatuspage
    client: StatuspageClient
    api: str
    db: str
    page_url: str
    slept: list[float] = field(default_factory=list)


@contextlib.asynccontextmanager
async def statuspage(
    *, api_key: str | None = None, page_id: str | None = None, client_timeout: float = 5.0
) -> AsyncIterator[Setup]:
    fake = FakeStatuspage()
    api, db = fake.add_component("API"), fake.add_component("Database")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as session:
        client = StatuspageClient(
            session, base_url=f"{base}/v1", page_id=page_id or fake.page_id,
            api_key=api_key or fake.api_key, timeout=client_timeout, sleep=sleep,
        )
        yield Setup(fake, client, api, db, f"{base}/v1/pages/{fake.page_id}", slept)


async def test_create_incident_sends_the_documented_request() -> None:
    async with statuspage() as sp:
        incident = await sp.client.create_incident(
            "Elevated API errors", body="We are investigating.",
            components={sp.api: "major_outage"}, metadata={"pagerd": {"incident": "42"}},
        )
        request = sp.fake.requests[-1]
        assert (request.method, request.path) == (
            "POST", f"/v1/pages/{sp.fake.page_id}/incidents"
        )
        assert request.headers["Authorization"] == f"OAuth {sp.fake.api_key}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.body == {"incident": {
            "name": "Elevated API errors", "status": "investigating",
            "body": "We are investigating.", "deliver_notifications": True,
            "components": {sp.api: "major_outage"}, "component_ids": [sp.api],
            "metadata": {"pagerd": {"incident": "42"}},
        }}

        assert (incident.name, incident.status, incident.impact) == (
            "Elevated API errors", "investigating", "critical"
        )
        assert incident.shortlink.startswith("http://stspg.io/")
        assert [(u.status, u.body) for u in incident.updates] == [
            ("investigating", "We are investigating.")
        ]
        assert [(c.id, c.status) for c in incident.components] == [(sp.api, "major_outage")]
        assert incident.raw["incident_updates"][0]["affected_components"] == [
            {"code": sp.api, "name": "API", "old_status": "operational",
             "new_status": "major_outage"}
        ]
        assert sp.fake.components[sp.api]["status"] == "major_outage"


async def test_updates_take_an_incident_to_resolved() -> None:
    async with statuspage() as sp:
        created = await sp.client.create_incident(
            "DB slow", components={sp.db: "degraded_performance"}
        )
        identified = await sp.client.update_incident(
            created.id, status="identified", body="A failing disk.",
            components={sp.db: "partial_outage"},
        )
        assert (identified.status, identified.impact) == ("identified", "major")
        monitoring = await sp.client.update_incident(created.id, status="monitoring",
                                                     body="Disk replaced.")
        assert monitoring.raw["monitoring_at"] is not None
        resolved = await sp.client.update_incident(
            created.id, status="resolved", body="All good.",
            components={sp.db: "operational"},
        )
        assert resolved.status == "resolved" and resolved.raw["resolved_at"]
        assert [u.status for u in resolved.updates] == [
            "resolved", "monitoring", "identified", "investigating"
        ]
        assert sp.fake.requests[-1].method == "PATCH"
        fetched = await sp.client.incident(created.id)
        assert fetched.updates[0].body == "All good."


async def test_set_component_status() -> None:
    async with statuspage() as sp:
        component = await sp.client.set_component_status(sp.api, "under_maintenance")
        assert (component.id, component.name, component.status) == (
            sp.api, "API", "under_maintenance"
        )
        assert sp.fake.requests[-1].body == {"component": {"status": "under_maintenance"}}
        names = [(c.name, c.status) for c in await sp.client.components()]
        assert names == [("API", "under_maintenance"), ("Database", "operational")]


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"api_key": "wrong-key"}, 401),
    ({"page_id": "otherpage123"}, 404),
])
async def test_a_refused_call_is_not_retried(kwargs: dict[str, Any], status: int) -> None:
    async with statuspage(**kwargs) as sp:
        with pytest.raises(StatuspageError) as caught:
            await sp.client.set_component_status(sp.api, "major_outage")
        assert (caught.value.status, caught.value.retryable) == (status, False)
        assert isinstance(caught.value, DeliveryError)
        assert len(sp.fake.requests) == 1 and sp.slept == []


async def test_an_unknown_component_is_a_permanent_error_naming_it() -> None:
    async with statuspage() as sp:
        with pytest.raises(StatuspageError) as caught:
            await sp.client.create_incident("x", components={"nosuchcompnt": "major_outage"})
        assert caught.value.reason == "http_422" and not caught.value.retryable
        assert "nosuchcompnt" in caught.value.detail
        assert sp.fake.incidents == {}


@pytest.mark.parametrize("status", [420, 429])
async def test_rate_limited_calls_are_retried_even_a_create(status: int) -> None:
    async with statuspage() as sp:
        sp.fake.failures = [status, status]
        incident = await sp.client.create_incident("Outage")
        assert incident.name == "Outage"
        assert len(sp.fake.incidents) == 1
        # Statuspage allows one request a second: never retry sooner.
        assert sp.slept == [1.0, 2.0]


async def test_retry_after_is_honoured() -> None:
    async with statuspage() as sp:
        sp.fake.failures, sp.fake.retry_after = [429], "3"
        await sp.client.set_component_status(sp.api, "major_outage")
        assert sp.slept == [3.0]


async def test_a_5xx_on_a_component_status_is_retried() -> None:
    async with statuspage() as sp:
        sp.fake.failures = [502]
        component = await sp.client.set_component_status(sp.db, "major_outage")
        assert component.status == "major_outage" and len(sp.slept) == 1


async def test_a_5xx_that_lasts_is_retryable_after_the_quick_attempts() -> None:
    async with statuspage() as sp:
        sp.fake.failures = [503, 503, 503]
        with pytest.raises(StatuspageError) as caught:
            await sp.client.set_component_status(sp.db, "major_outage")
        assert (caught.value.reason, caught.value.retryable) == ("http_503", True)
        assert len(sp.fake.requests) == 3


async def test_a_5xx_on_a_message_is_not_repeated_by_the_client() -> None:
    async with statuspage() as sp:
        sp.fake.failures = [500]
        with pytest.raises(StatuspageError) as caught:
            await sp.client.create_incident("Outage", body="Investigating.")
        assert caught.value.retryable and caught.value.maybe_applied
        assert len(sp.fake.requests) == 1


async def test_an_update_without_a_message_is_safe_to_repeat() -> None:
    async with statuspage() as sp:
        created = await sp.client.create_incident("Outage")
        sp.fake.failures = [500]
        updated = await sp.client.update_incident(created.id, components={sp.api: "major_outage"})
        assert updated.impact == "critical" and len(sp.slept) == 1


async def test_a_timeout_may_have_been_applied() -> None:
    async with statuspage(client_timeout=0.2) as sp:
        sp.fake.delay = 1.0
        with pytest.raises(StatuspageError) as caught:
            await sp.client.create_incident("Outage", body="Investigating.")
        assert caught.value.reason == "timeout"
        assert caught.value.retryable and caught.value.maybe_applied


async def test_no_connection_is_retryable_and_nothing_was_sent() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with aiohttp.ClientSession() as session:
        client = StatuspageClient(
            session, base_url=f"http://127.0.0.1:{free_port()}/v1", page_id="p",
            api_key="k", sleep=sleep,
        )
        with pytest.raises(StatuspageError) as caught:
            await client.create_incident("Outage", body="Investigating.")
    assert (caught.value.reason, caught.value.retryable) == ("connection", True)
    assert not caught.value.maybe_applied
    # Nothing reached the server, so even a create was tried again.
    assert len(slept) == 2


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.create_incident(""), "name"),
    (lambda c: c.create_incident("x" * 256), "255"),
    (lambda c: c.create_incident("x", status="scheduled"), "status"),
    (lambda c: c.create_incident("x", body="b" * 25_001), "25000"),
    (lambda c: c.create_incident("x", components={"abc": "down"}), "abc"),
    (lambda c: c.update_incident("i", status="postmortem"), "status"),
    (lambda c: c.set_component_status("abc", "broken"), "abc"),
])
async def test_bad_arguments_fail_before_anything_is_sent(
    call: Callable[[StatuspageClient], Awaitable[Any]], message: str
) -> None:
    async with statuspage() as sp:
        with pytest.raises(ValueError, match=message):
            await call(sp.client)
        assert sp.fake.requests == []


async def test_the_fake_accepts_the_api_key_as_a_query_parameter() -> None:
    async with statuspage() as sp, aiohttp.ClientSession() as session:
        base = sp.page_url
        async with session.get(f"{base}/components?api_key={sp.fake.api_key}") as response:
            assert response.status == 200
            assert len(await response.json()) == 2
        async with session.get(f"{base}/components") as response:
            assert response.status == 401
            assert await response.json() == {"message": "Could not authenticate"}
