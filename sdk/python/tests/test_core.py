"""Retries, timeouts, typed errors and streaming against scripted fake servers."""

from __future__ import annotations

import json

import pytest

from starfire import (
    APIConnectionError,
    APIStreamError,
    APITimeoutError,
    BadRequestError,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    PermissionDeniedError,
    RateLimitError,
    Starfire,
    StarfireError,
    UnprocessableEntityError,
)
from starfire._client import backoff_delay
from starfire._streaming import iter_sse_data

from .fakes import Answer, FakeServer

JSON = {"content-type": "application/json"}
HELLO = [{"role": "user", "content": "hi"}]
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "system_fingerprint": "fp",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 0},
    },
}


def error(
    status: int, code: str, *, request_id: str = "req_fake", **headers: str
) -> Answer:
    body = json.dumps(
        {"error": {"message": f"{code}!", "type": "t", "param": None, "code": code}}
    )
    return Answer(
        status, body.encode(), {**JSON, "x-request-id": request_id, **headers}
    )


def ok() -> Answer:
    return Answer(200, json.dumps(COMPLETION).encode(), JSON)


def chat(url: str, **client_options):
    client = Starfire(api_key="sf-test", base_url=url, **client_options)
    return client.chat.completions.create(model="m", messages=HELLO)


def test_no_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("STARFIRE_API_KEY", raising=False)
    with pytest.raises(StarfireError, match="STARFIRE_API_KEY"):
        Starfire()


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses_are_retried(status):
    with FakeServer([error(status, "x", **{"retry-after": "0"}), ok()]) as fake:
        assert chat(fake.url).choices[0].message.content == "ok"
    assert len(fake.seen) == 2
    assert (
        fake.seen[0].headers["idempotency-key"]
        == fake.seen[1].headers["idempotency-key"]
    )


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_request", BadRequestError),
        (422, "invalid_value", UnprocessableEntityError),
        (403, "insufficient_permissions", PermissionDeniedError),
        (429, "insufficient_quota", InsufficientQuotaError),
    ],
)
def test_final_statuses_are_not_retried(status, code, cls):
    with FakeServer([error(status, code, request_id="req_abc")]) as fake:
        with pytest.raises(cls) as err:
            chat(fake.url)
    assert len(fake.seen) == 1
    assert err.value.request_id == "req_abc"
    assert err.value.code == code
    assert "req_abc" in str(err.value)


def test_retries_give_up_with_the_typed_error():
    script = [error(429, "rate_limit_exceeded", **{"retry-after": "0"})] * 3
    with FakeServer(script) as fake:
        with pytest.raises(RateLimitError) as err:
            chat(fake.url, max_retries=2)
    assert len(fake.seen) == 3
    assert not isinstance(err.value, InsufficientQuotaError)


def test_server_errors_become_internal_server_error():
    with FakeServer([error(503, "model_not_loaded")]) as fake:
        with pytest.raises(InternalServerError) as err:
            chat(fake.url, max_retries=0)
    assert err.value.status_code == 503


def test_a_long_retry_after_is_not_waited_for():
    with FakeServer([error(409, "conflict", **{"retry-after": "3600"})]) as fake:
        with pytest.raises(ConflictError):
            chat(fake.url)
    assert len(fake.seen) == 1


def test_backoff_grows_with_jitter_and_honours_retry_after():
    delays = [backoff_delay(n, None) for n in range(6)]
    assert 0.375 <= delays[0] <= 0.5
    assert 0.75 <= delays[1] <= 1.0
    assert all(d <= 8.0 for d in delays)


def test_timeouts_raise_api_timeout_error():
    with FakeServer([Answer(200, b"{}", JSON, delay=1.0)] * 2) as fake:
        with pytest.raises(APITimeoutError):
            chat(fake.url, timeout=0.2, max_retries=1)
    assert len(fake.seen) == 2


def test_unreachable_server_raises_connection_error():
    with FakeServer([]) as fake:
        url = fake.url
    with pytest.raises(APIConnectionError):
        chat(url, max_retries=0)


def test_a_caller_idempotency_key_is_sent():
    with FakeServer([ok()]) as fake:
        Starfire(api_key="sf-test", base_url=fake.url).chat.completions.create(
            model="m", messages=HELLO, idempotency_key="my-key-1"
        )
    assert fake.seen[0].headers["idempotency-key"] == "my-key-1"
    assert fake.seen[0].headers["authorization"] == "Bearer sf-test"


def sse(*events: object) -> bytes:
    return (
        b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
        + b"data: [DONE]\n\n"
    )


def chunk(content: str | None, finish: str | None = None) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "delta": {"content": content}, "finish_reason": finish}
        ],
    }


def test_a_stream_that_produced_output_is_never_retried():
    body = sse(chunk("Hel"), chunk("lo"), chunk(None, "stop"))
    headers = {"content-type": "text/event-stream", "x-request-id": "req_s"}
    with FakeServer([Answer(200, body, headers, cut_after=40), ok()]) as fake:
        stream = Starfire(api_key="sf-test", base_url=fake.url).chat.completions.create(
            model="m", messages=HELLO, stream=True
        )
        with pytest.raises(APIConnectionError) as err:
            list(stream)
    assert len(fake.seen) == 1
    assert err.value.request_id == "req_s"


def test_a_stream_is_retried_before_it_starts_and_parsed():
    headers = {"content-type": "text/event-stream"}
    body = sse(chunk("Hel"), chunk("lo"), chunk(None, "stop"))
    with FakeServer(
        [error(503, "overloaded", **{"retry-after": "0"}), Answer(200, body, headers)]
    ) as fake:
        stream = Starfire(api_key="sf-test", base_url=fake.url).chat.completions.create(
            model="m", messages=HELLO, stream=True
        )
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(fake.seen) == 2


def test_an_error_inside_a_stream_is_raised():
    body = sse(
        chunk("a"), {"error": {"message": "engine failed", "code": "engine_error"}}
    )
    with FakeServer(
        [
            Answer(
                200,
                body,
                {"content-type": "text/event-stream", "x-request-id": "req_e"},
            )
        ]
    ) as fake:
        stream = Starfire(api_key="sf-test", base_url=fake.url).chat.completions.create(
            model="m", messages=HELLO, stream=True
        )
        with pytest.raises(APIStreamError) as err:
            list(stream)
    assert err.value.code == "engine_error" and err.value.request_id == "req_e"


def test_sse_parsing_joins_multiline_data_and_skips_comments():
    lines = [": ping", "event: x", "data: a", "data: b", "", "data:c", "", "id: 1"]
    assert list(iter_sse_data(iter(lines))) == ["a\nb", "c"]


def deployment(state: str = "ready", **fields: object) -> dict:
    """A `DeploymentObject` as the server writes it."""
    return {
        "id": "dep_1",
        "object": "deployment",
        "name": "my-llm",
        "model": "m",
        "replicas": {"min": 1, "max": 2},
        "target_replicas": 1,
        "ready_replicas": 1,
        "hardware": "cpu",
        "kv_cache_memory": 67108864,
        "max_model_len": None,
        "overflow": "none",
        "state": state,
        "status_message": None,
        "created_at": 1,
        "updated_at": 2,
        **fields,
    }


def answer(body: object, status: int = 200) -> Answer:
    return Answer(status, json.dumps(body).encode(), JSON)


def deployment_page(ids: list[str], has_more: bool) -> Answer:
    return answer(
        {
            "object": "list",
            "data": [deployment(id=i) for i in ids],
            "first_id": ids[0],
            "last_id": ids[-1],
            "has_more": has_more,
        }
    )


def test_deployments_call_their_routes_and_parse_the_answers():
    events = {
        "object": "list",
        "data": [
            {
                "id": "depev_1",
                "object": "deployment.event",
                "from_state": None,
                "to_state": "requested",
                "actor": "user:user_1",
                "message": None,
                "created_at": 1,
            },
            {
                "id": "depev_2",
                "object": "deployment.event",
                "from_state": "requested",
                "to_state": "provisioning",
                "actor": "operator:ops",
                "message": "approved",
                "created_at": 2,
            },
        ],
    }
    script = [
        answer(deployment("requested", replicas={"min": 1, "max": 3}), 201),
        answer(deployment()),
        answer(deployment("scaling", replicas={"min": 2, "max": 3})),
        answer(deployment("stopping", ready_replicas=0)),
        answer(deployment("provisioning", ready_replicas=0)),
        answer(events),
        answer(deployment("deleting", ready_replicas=0)),
    ]
    with FakeServer(script) as fake:
        deployments = Starfire(api_key="sf-test", base_url=fake.url).deployments
        created = deployments.create(
            name="my-llm",
            model="m",
            replicas={"min": 1, "max": 3},
            max_model_len=2048,
            overflow="shared",
            idempotency_key="dep-key",
        )
        got = deployments.retrieve("dep_1")
        scaled = deployments.update("dep_1", replicas={"min": 2, "max": 3})
        stopped = deployments.stop("dep_1")
        started = deployments.start("dep_1")
        history = deployments.events("dep_1")
        deleted = deployments.delete("dep_1")
    assert created.state == "requested" and created.replicas.max_ == 3
    assert got.id == "dep_1" and got.ready_replicas == 1 and got.max_model_len is None
    assert scaled.state == "scaling" and scaled.replicas.min_ == 2
    assert (stopped.state, started.state, deleted.state) == (
        "stopping",
        "provisioning",
        "deleting",
    )
    assert [(e.from_state, e.to_state, e.actor) for e in history] == [
        (None, "requested", "user:user_1"),
        ("requested", "provisioning", "operator:ops"),
    ]
    assert [(s.method, s.path) for s in fake.seen] == [
        ("POST", "/v1/organization/deployments"),
        ("GET", "/v1/organization/deployments/dep_1"),
        ("POST", "/v1/organization/deployments/dep_1"),
        ("POST", "/v1/organization/deployments/dep_1/stop"),
        ("POST", "/v1/organization/deployments/dep_1/start"),
        ("GET", "/v1/organization/deployments/dep_1/events"),
        ("DELETE", "/v1/organization/deployments/dep_1"),
    ]
    # Only what the caller gave is sent; the server fills in the rest.
    assert json.loads(fake.seen[0].body) == {
        "name": "my-llm",
        "model": "m",
        "replicas": {"min": 1, "max": 3},
        "max_model_len": 2048,
        "overflow": "shared",
    }
    assert fake.seen[0].headers["idempotency-key"] == "dep-key"
    assert json.loads(fake.seen[2].body) == {"replicas": {"min": 2, "max": 3}}
    assert fake.seen[3].body == b"" and "idempotency-key" in fake.seen[3].headers


def test_deployments_are_listed_across_pages():
    with FakeServer(
        [deployment_page(["dep_a", "dep_b"], True), deployment_page(["dep_c"], False)]
    ) as fake:
        client = Starfire(api_key="sf-test", base_url=fake.url)
        first = client.deployments.list(limit=2, include_deleted=True)
        ids = [d.id for d in first]
    assert [d.id for d in first.data] == ["dep_a", "dep_b"] and first.has_more
    assert ids == ["dep_a", "dep_b", "dep_c"]
    assert fake.seen[0].path == (
        "/v1/organization/deployments?limit=2&include_deleted=true"
    )
    assert fake.seen[1].path == (
        "/v1/organization/deployments?limit=2&after=dep_b&include_deleted=true"
    )


def test_a_deployment_conflict_is_a_typed_error():
    with FakeServer([error(409, "conflict")]) as fake:
        client = Starfire(api_key="sf-test", base_url=fake.url, max_retries=0)
        with pytest.raises(ConflictError) as err:
            client.deployments.start("dep_1")
    assert err.value.code == "conflict" and len(fake.seen) == 1
