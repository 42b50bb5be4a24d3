"""The asyncio client's retries, typed errors, streams and pages against scripted fake
servers (the same fakes as test_core.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from starfire import (
    APIConnectionError,
    APITimeoutError,
    AsyncStarfire,
    AsyncStream,
    InsufficientQuotaError,
    RateLimitError,
)

from .fakes import Answer, FakeServer
from .test_core import (
    HELLO,
    JSON,
    answer,
    chunk,
    deployment,
    deployment_page,
    error,
    ok,
    sse,
)


def run(coro):
    return asyncio.run(coro)


async def chat(url: str, **options):
    async with AsyncStarfire(api_key="sf-test", base_url=url, **options) as client:
        return await client.chat.completions.create(model="m", messages=HELLO)


def test_a_429_is_retried_with_the_same_idempotency_key():
    with FakeServer(
        [error(429, "rate_limit_exceeded", **{"retry-after": "0"}), ok()]
    ) as fake:
        completion = run(chat(fake.url))
    assert completion.choices[0].message.content == "ok"
    assert len(fake.seen) == 2
    keys = {s.headers["idempotency-key"] for s in fake.seen}
    assert len(keys) == 1 and next(iter(keys)).startswith("sf-py-")


def test_retries_give_up_with_the_typed_error():
    script = [error(429, "rate_limit_exceeded", **{"retry-after": "0"})] * 2
    with FakeServer(script) as fake:
        with pytest.raises(RateLimitError) as err:
            run(chat(fake.url, max_retries=1))
    assert len(fake.seen) == 2
    assert err.value.request_id == "req_fake"


def test_insufficient_quota_is_not_retried():
    with FakeServer([error(429, "insufficient_quota")]) as fake:
        with pytest.raises(InsufficientQuotaError):
            run(chat(fake.url))
    assert len(fake.seen) == 1


def test_timeouts_and_unreachable_servers():
    with FakeServer([Answer(200, b"{}", JSON, delay=1.0)] * 2) as fake:
        with pytest.raises(APITimeoutError):
            run(chat(fake.url, timeout=0.2, max_retries=1))
    assert len(fake.seen) == 2
    with FakeServer([]) as fake:
        url = fake.url
    with pytest.raises(APIConnectionError):
        run(chat(url, max_retries=0))


def test_a_stream_is_parsed_and_never_retried_once_started():
    headers = {"content-type": "text/event-stream", "x-request-id": "req_s"}
    body = sse(chunk("Hel"), chunk("lo"), chunk(None, "stop"))

    async def stream_text(url: str) -> str:
        async with AsyncStarfire(api_key="sf-test", base_url=url) as client:
            stream = await client.chat.completions.create(
                model="m", messages=HELLO, stream=True
            )
            assert isinstance(stream, AsyncStream)
            return "".join([c.choices[0].delta.content or "" async for c in stream])

    with FakeServer([Answer(200, body, headers)]) as fake:
        assert run(stream_text(fake.url)) == "Hello"
    with FakeServer([Answer(200, body, headers, cut_after=40), ok()]) as fake:
        with pytest.raises(APIConnectionError) as err:
            run(stream_text(fake.url))
    assert len(fake.seen) == 1
    assert err.value.request_id == "req_s"


def test_lists_are_walked_across_pages():
    def page(ids: list[str], has_more: bool) -> Answer:
        data = [
            {
                "id": i,
                "object": "organization.project.api_key",
                "name": i,
                "redacted_value": "sf-...",
                "created_at": 1,
                "last_used_at": None,
                "project_id": "proj_1",
                "scopes": ["inference"],
                "limits": {},
                "owner": {"type": "user", "id": "user_1"},
            }
            for i in ids
        ]
        body = {
            "object": "list",
            "data": data,
            "first_id": ids[0],
            "last_id": ids[-1],
            "has_more": has_more,
        }
        return Answer(200, json.dumps(body).encode(), JSON)

    async def walk(url: str) -> list[str]:
        async with AsyncStarfire(api_key="sf-test", base_url=url) as client:
            first = await client.projects.api_keys.list("proj_1", limit=2)
            return [k.id async for k in first]

    with FakeServer([page(["a", "b"], True), page(["c"], False)]) as fake:
        assert run(walk(fake.url)) == ["a", "b", "c"]
    assert fake.seen[1].path.endswith("after=b")


def test_deployments_are_awaited_and_paged():
    events = {
        "object": "list",
        "data": [
            {
                "id": "depev_1",
                "object": "deployment.event",
                "from_state": None,
                "to_state": "requested",
                "actor": "system",
                "message": None,
                "created_at": 1,
            }
        ],
    }
    script = [
        answer(deployment("requested"), 201),
        deployment_page(["dep_a"], True),
        deployment_page(["dep_b"], False),
        answer(deployment("scaling", replicas={"min": 2, "max": 2})),
        answer(deployment("stopping")),
        answer(deployment("provisioning")),
        answer(events),
        answer(deployment("deleting")),
        answer(deployment()),
    ]

    async def walk(url: str):
        async with AsyncStarfire(api_key="sf-test", base_url=url) as client:
            deployments = client.deployments
            created = await deployments.create(
                name="my-llm", model="m", replicas={"min": 1, "max": 2}
            )
            first = await deployments.list(limit=1)
            ids = [d.id async for d in first]
            scaled = await deployments.update("dep_1", replicas={"min": 2, "max": 2})
            states = [
                (await deployments.stop("dep_1")).state,
                (await deployments.start("dep_1")).state,
            ]
            history = await deployments.events("dep_1")
            deleted = await deployments.delete("dep_1")
            got = await deployments.retrieve("dep_1")
            return created, ids, scaled, states, history, deleted, got

    with FakeServer(script) as fake:
        created, ids, scaled, states, history, deleted, got = run(walk(fake.url))
    assert created.state == "requested" and created.name == "my-llm"
    assert ids == ["dep_a", "dep_b"]
    assert scaled.replicas.min_ == 2 and states == ["stopping", "provisioning"]
    assert [(e.from_state, e.to_state) for e in history] == [(None, "requested")]
    assert deleted.state == "deleting" and got.state == "ready"
    assert [(s.method, s.path) for s in fake.seen] == [
        ("POST", "/v1/organization/deployments"),
        ("GET", "/v1/organization/deployments?limit=1"),
        ("GET", "/v1/organization/deployments?limit=1&after=dep_a"),
        ("POST", "/v1/organization/deployments/dep_1"),
        ("POST", "/v1/organization/deployments/dep_1/stop"),
        ("POST", "/v1/organization/deployments/dep_1/start"),
        ("GET", "/v1/organization/deployments/dep_1/events"),
        ("DELETE", "/v1/organization/deployments/dep_1"),
        ("GET", "/v1/organization/deployments/dep_1"),
    ]
    assert json.loads(fake.seen[0].body) == {
        "name": "my-llm",
        "model": "m",
        "replicas": {"min": 1, "max": 2},
    }
    assert json.loads(fake.seen[3].body) == {"replicas": {"min": 2, "max": 2}}
