"""The SDK against a live `starfire serve` (see conftest.py)."""

from __future__ import annotations

import json
import time

import pytest

from starfire import (
    APIStreamError,
    AuthenticationError,
    ChatCompletionChunk,
    ConflictError,
    NotFoundError,
    RateLimitError,
    Starfire,
    ToolCallAccumulator,
    UnprocessableEntityError,
)
from starfire._generated.models import (
    BalanceObject,
    BudgetObject,
    ChatCompletion,
    InvoiceObject,
    LedgerEntryObject,
    PriceObject,
)

from .conftest import MODEL
from .fakes import Answer, FakeServer

HELLO = [{"role": "user", "content": "Say hello."}]


def inference(server) -> Starfire:
    return Starfire(api_key=server["api_key"], base_url=server["base_url"])


def admin(server) -> Starfire:
    return Starfire(api_key=server["admin_key"], base_url=server["base_url"])


def test_reads_key_and_base_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("STARFIRE_API_KEY", server["api_key"])
    monkeypatch.setenv("STARFIRE_BASE_URL", server["base_url"])
    assert [m.id for m in Starfire().models.list()] == [MODEL]


def test_chat_completion(server):
    completion = inference(server).chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=8, temperature=0
    )
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens == 8


def test_streamed_chat_completion(server):
    with inference(server).chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert stream.request_id and stream.request_id.startswith("req_")
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_a_json_schema_is_enforced(server):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer", "minimum": 0, "maximum": 99999999},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    completion = inference(server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    city = json.loads(completion.choices[0].message.content)
    assert set(city) == {"city", "population"}
    assert isinstance(city["population"], int) and 0 <= city["population"] <= 99999999


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def test_tool_calls_whole_and_streamed_agree(server):
    client = inference(server)
    ask = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=60,
        temperature=0,
    )
    completion = client.chat.completions.create(**ask)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
    assembled = ToolCallAccumulator()
    with client.chat.completions.create(**ask, stream=True) as stream:
        for chunk in stream:
            if chunk.choices:
                assembled.add(chunk.choices[0].delta)
    assert [(c.function.name, c.function.arguments) for c in assembled.calls] == [
        (c.function.name, c.function.arguments) for c in choice.message.tool_calls
    ]
    assert assembled.calls[0].id.startswith("call_")
    # The answer and the tool's result continue the conversation.
    messages = ask["messages"] + [
        choice.message.to_dict(),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    answer = client.chat.completions.create(
        **{**ask, "messages": messages, "tool_choice": "none", "max_tokens": 10}
    )
    assert isinstance(answer.choices[0].message.content, str)


def test_bad_key_raises_authentication_error_with_request_id(server):
    client = Starfire(api_key="sf-not-a-real-key", base_url=server["base_url"])
    with pytest.raises(AuthenticationError) as err:
        client.models.list()
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert err.value.request_id and err.value.request_id.startswith("req_")


def test_unknown_project_raises_not_found(server):
    with pytest.raises(NotFoundError) as err:
        admin(server).projects.retrieve("proj_doesnotexist")
    assert err.value.request_id and err.value.request_id.startswith("req_")


def test_unknown_chat_parameter_is_refused_before_sending(server):
    with pytest.raises(TypeError, match="max_tokenz"):
        inference(server).chat.completions.create(
            model=MODEL, messages=HELLO, max_tokenz=3
        )


def test_key_is_created_used_and_revoked(server):
    control = admin(server)
    project = control.projects.create(name="sdk key test")
    created = control.projects.api_keys.create(project.id, name="ci")
    assert created.value.startswith("sf-")
    fresh = Starfire(api_key=created.value, base_url=server["base_url"])
    assert [m.id for m in fresh.models.list()] == [MODEL]
    listed = [k.id for k in control.projects.api_keys.list(project.id)]
    assert listed == [created.id]
    deleted = control.projects.api_keys.delete(project.id, created.id)
    assert deleted.deleted
    with pytest.raises(AuthenticationError):
        fresh.models.list()
    assert list(control.projects.api_keys.list(project.id)) == []


def test_lists_are_paginated_automatically(server):
    control = admin(server)
    project = control.projects.create(name="sdk pagination")
    made = {
        control.projects.api_keys.create(project.id, name=f"k{i}").id for i in range(5)
    }
    first = control.projects.api_keys.list(project.id, limit=2)
    assert len(first.data) == 2 and first.has_more
    pages = list(first.iter_pages())
    assert [len(p.data) for p in pages] == [2, 2, 1]
    assert {k.id for k in first} == made


def test_a_retry_after_429_succeeds_with_the_same_idempotency_key(server):
    # A proxy that answers the first attempt with 429 and forwards the rest to the server.
    limited = json.dumps(
        {
            "error": {
                "message": "slow down",
                "type": "rate_limit_error",
                "code": "rate_limit_exceeded",
            }
        }
    ).encode()
    script = [
        Answer(429, limited, {"content-type": "application/json", "retry-after": "0"})
    ]
    with FakeServer(script, upstream=server["base_url"]) as proxy:
        client = Starfire(api_key=server["api_key"], base_url=proxy.url)
        completion = client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=3, temperature=0
        )
    assert completion.usage.completion_tokens == 3
    assert len(proxy.seen) == 2
    keys = {s.headers.get("idempotency-key") for s in proxy.seen}
    assert len(keys) == 1 and None not in keys


def test_the_gateway_answers_a_retried_create_with_the_first_object(server):
    control = admin(server)
    first = control.projects.create(name="idempotent", idempotency_key="sdk-idem-1")
    again = control.projects.create(name="idempotent", idempotency_key="sdk-idem-1")
    assert again.id == first.id
    project = first.id
    key = control.projects.api_keys.create(
        project, name="k", idempotency_key="sdk-idem-2"
    )
    key_again = control.projects.api_keys.create(
        project, name="k", idempotency_key="sdk-idem-2"
    )
    assert (key_again.id, key_again.value) == (key.id, key.value)
    assert [k.id for k in control.projects.api_keys.list(project)] == [key.id]
    with pytest.raises(UnprocessableEntityError) as err:
        control.projects.create(name="something else", idempotency_key="sdk-idem-1")
    assert err.value.param == "Idempotency-Key"


def test_a_retry_after_a_lost_answer_does_not_create_twice(server):
    # The proxy forwards the first attempt but answers 502 (the answer was lost on the way);
    # the SDK retries with the same Idempotency-Key and the gateway replays the first answer.
    control_url = server["base_url"]
    with FakeServer([], upstream=control_url) as proxy:
        proxy.lose_first_answer = True
        client = Starfire(api_key=server["admin_key"], base_url=proxy.url)
        project = client.projects.create(name="lost answer")
    assert len(proxy.seen) == 2
    names = [p.name for p in admin(server).projects.list() if p.name == "lost answer"]
    assert names == ["lost answer"]
    assert project.name == "lost answer"


def test_websocket_chat_runs_two_requests_on_one_socket(server):
    with inference(server).chat.ws() as socket:
        first = socket.chat(model=MODEL, messages=HELLO, max_tokens=5, temperature=0)
        second = socket.chat(model=MODEL, messages=HELLO, max_tokens=3, temperature=0)
        frames = list(first)
        assert frames[0].delta.role == "assistant"
        assert "".join(f.delta.content or "" for f in frames)
        assert second.text()
    assert first.done is not None and first.done.finish_reason == "length"
    assert first.done.usage is not None and first.done.usage.completion_tokens == 5
    assert second.done is not None and second.done.usage.completion_tokens == 3


def test_websocket_chat_with_a_ticket_and_a_request_error(server):
    with inference(server).chat.ws(use_ticket=True) as socket:
        assert socket.chat(model=MODEL, messages=HELLO, max_tokens=2, temperature=0).text()
        with pytest.raises(APIStreamError) as err:
            list(socket.chat(model="no-such-model", messages=HELLO))
        assert err.value.code == "model_not_found"


def test_websocket_with_a_bad_key_raises_authentication_error(server):
    client = Starfire(api_key="sf-not-a-real-key", base_url=server["base_url"])
    with pytest.raises(AuthenticationError) as err:
        client.chat.ws()
    assert err.value.status_code == 401
    assert err.value.request_id and err.value.request_id.startswith("req_")


def test_a_key_over_its_rate_limit_raises_rate_limit_error(server):
    control = admin(server)
    project = control.projects.create(name="py rate limit")
    key = control.projects.api_keys.create(project.id, name="slow")
    updated = control.projects.api_keys.update(project.id, key.id, limits={"rpm": 1})
    assert updated.limits.rpm == 1
    client = Starfire(api_key=key.value, base_url=server["base_url"], max_retries=0)
    client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1, temperature=0)
    with pytest.raises(RateLimitError) as err:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1, temperature=0)
    assert err.value.status_code == 429
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert err.value.response.headers.get("retry-after")


def test_usage_costs_and_credits_are_read_back(server):
    control = admin(server)
    start = int(time.time()) - 60
    project = control.projects.create(name="py usage")
    key = control.projects.api_keys.create(project.id, name="metered")
    used = Starfire(api_key=key.value, base_url=server["base_url"])
    completion = used.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4, temperature=0)
    results = [
        r
        for bucket in control.usage.completions(
            start_time=start,
            bucket_width="1m",
            api_key_ids=[key.id],
            group_by=["api_key_id"],
        )
        for r in bucket.results
    ]
    assert [r.api_key_id for r in results] == [key.id]
    assert results[0].num_model_requests == 1
    assert results[0].input_tokens == completion.usage.prompt_tokens
    assert results[0].output_tokens == 4
    costs = [
        r
        for bucket in control.costs.list(
            start_time=start - 86_400, group_by=["project_id"]
        )
        for r in bucket.results
    ]
    assert any(c.project_id == project.id for c in costs)
    assert control.credits.retrieve().object_ == "organization.credits"


def _requests(invoice: InvoiceObject) -> int:
    """The chat requests an invoice counts for the default model."""
    return sum(line.requests for line in invoice.lines if line.model == MODEL)


def test_billing_balance_ledger_prices_and_invoices_are_read_back(server):
    control = admin(server)
    project = control.projects.create(name="py billing")
    key = control.projects.api_keys.create(project.id, name="billed")
    used = Starfire(api_key=key.value, base_url=server["base_url"])
    before = control.billing.upcoming_invoice()
    used.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4, temperature=0)
    balance = control.billing.balance()
    assert isinstance(balance, BalanceObject)
    assert balance.object_ == "billing.balance" and balance.currency == "usd"
    assert balance.mode in ("prepaid", "postpaid")
    ledger = control.billing.ledger(limit=2)
    entries = list(ledger)
    assert all(isinstance(e, LedgerEntryObject) for e in entries)
    assert all(e.object_ == "billing.ledger_entry" for e in entries)
    if balance.mode == "prepaid":
        assert any(e.kind == "usage" and e.amount_micros < 0 for e in entries)
    prices = control.billing.prices()
    assert prices and all(isinstance(p, PriceObject) for p in prices)
    assert MODEL in {p.model for p in prices}
    assert [p.model for p in control.billing.prices(model=MODEL)] == [MODEL]
    # Usage is recorded when the request ends: wait for the draft to count the chat.
    upcoming = control.billing.upcoming_invoice()
    for _ in range(50):
        if _requests(upcoming) > _requests(before):
            break
        time.sleep(0.1)
        upcoming = control.billing.upcoming_invoice()
    assert isinstance(upcoming, InvoiceObject)
    assert upcoming.status == "draft" and upcoming.id is None
    assert upcoming.period == time.strftime("%Y-%m", time.gmtime())
    assert control.billing.upcoming_invoice(upcoming.period).period == upcoming.period
    assert _requests(upcoming) > _requests(before)
    assert upcoming.subtotal_micros >= before.subtotal_micros
    assert all(isinstance(i, InvoiceObject) for i in control.billing.invoices())
    with pytest.raises(NotFoundError):
        control.billing.invoice("inv_doesnotexist")
    with pytest.raises(UnprocessableEntityError):
        control.billing.upcoming_invoice("not-a-month")


def test_budgets_are_set_read_back_and_cleared(server):
    control = admin(server)
    project = control.projects.create(name="py budget")
    assert control.budgets.project(project.id).limit_micros is None
    set_ = control.budgets.set_project(project.id, limit_micros=5_000_000)
    assert isinstance(set_, BudgetObject)
    assert (set_.scope, set_.scope_id, set_.limit_micros) == (
        "project",
        project.id,
        5_000_000,
    )
    read = control.budgets.project(project.id)
    assert read.limit_micros == 5_000_000 and read.available_micros == 5_000_000
    cleared = control.budgets.clear_project(project.id)
    assert cleared.limit_micros is None and cleared.available_micros is None
    assert control.budgets.project(project.id).limit_micros is None
    key = control.projects.api_keys.create(project.id, name="capped")
    assert control.budgets.set_key(project.id, key.id, limit_micros=7).limit_micros == 7
    assert control.budgets.key(project.id, key.id).scope == "api_key"
    assert control.budgets.clear_key(project.id, key.id).limit_micros is None
    org = control.budgets.organization()
    assert org.scope == "organization" and org.limit_micros is None
    assert control.budgets.set_organization(limit_micros=10**12).limit_micros == 10**12
    assert control.budgets.clear_organization().limit_micros is None
    with pytest.raises(NotFoundError):
        control.budgets.project("proj_doesnotexist")


def test_a_free_organization_opens_a_top_up_once_per_idempotency_key(server, fake_stripe):
    import httpx

    signup = httpx.post(
        server["base_url"] + "/v1/auth/signup",
        json={"email": "payer@example.com", "password": "password123"},
    )
    assert signup.status_code == 201, signup.text
    payer = Starfire(api_key=signup.json()["access_token"], base_url=server["base_url"])
    assert payer.billing.balance().top_ups_available
    first = payer.billing.create_top_up(
        amount_micros=12_340_000, idempotency_key="sdk-top-up-1"
    )
    again = payer.billing.create_top_up(
        amount_micros=12_340_000, idempotency_key="sdk-top-up-1"
    )
    assert again.id == first.id and first.status == "open"
    assert first.checkout_url.endswith(first.checkout_session_id)
    assert len(fake_stripe.sessions) == 1
    assert fake_stripe.sessions[0]["line_items[0][price_data][unit_amount]"] == "1234"
    assert [t.id for t in payer.billing.top_ups()] == [first.id]
    assert payer.billing.top_up(first.id).amount_micros == 12_340_000
    with pytest.raises(UnprocessableEntityError) as err:
        payer.billing.create_top_up(amount_micros=1)
    assert err.value.param == "amount_micros"
    # The bootstrapped organization is enterprise (postpaid): nothing to top up.
    with pytest.raises(ConflictError):
        admin(server).billing.create_top_up(amount_micros=5_000_000)
