"""The asyncio client against a live `starfire serve` (see conftest.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from starfire import (
    APIStreamError,
    AsyncStarfire,
    AuthenticationError,
    ChatCompletionChunk,
)

from .conftest import MODEL

HELLO = [{"role": "user", "content": "Say hello."}]


def client(server, key: str = "api_key") -> AsyncStarfire:
    return AsyncStarfire(api_key=server[key], base_url=server["base_url"])


def test_async_chat_whole_and_streamed(server):
    async def main():
        async with client(server) as c:
            completion = await c.chat.completions.create(
                model=MODEL, messages=HELLO, max_tokens=4, temperature=0
            )
            stream = await c.chat.completions.create(
                model=MODEL,
                messages=HELLO,
                max_tokens=5,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                chunks = [chunk async for chunk in stream]
            return completion, stream, chunks

    completion, stream, chunks = asyncio.run(main())
    assert completion.usage.completion_tokens == 4
    assert stream.request_id and stream.request_id.startswith("req_")
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_async_websocket_runs_requests_at_once(server):
    async def main():
        async with client(server) as c:
            async with await c.chat.ws() as socket:
                first = await socket.chat(model=MODEL, messages=HELLO, max_tokens=5, temperature=0)
                second = await socket.chat(model=MODEL, messages=HELLO, max_tokens=3, temperature=0)
                texts = await asyncio.gather(first.text(), second.text())
                bad = await socket.chat(model="no-such-model", messages=HELLO)
                with pytest.raises(APIStreamError) as err:
                    await bad.text()
                return first, second, texts, err.value

    first, second, texts, error = asyncio.run(main())
    assert all(texts)
    assert first.done.usage.completion_tokens == 5
    assert second.done.usage.completion_tokens == 3
    assert error.code == "model_not_found"


def test_async_websocket_with_a_ticket_and_a_bad_key(server):
    async def main():
        async with client(server) as c:
            async with await c.chat.ws(use_ticket=True) as socket:
                stream = await socket.chat(model=MODEL, messages=HELLO, max_tokens=2, temperature=0)
                text = await stream.text()
        bad = AsyncStarfire(api_key="sf-not-a-real-key", base_url=server["base_url"])
        with pytest.raises(AuthenticationError) as err:
            await bad.chat.ws()
        await bad.close()
        return text, err.value

    text, error = asyncio.run(main())
    assert text
    assert error.status_code == 401 and error.request_id.startswith("req_")


def test_async_key_created_used_revoked_and_usage_read_back(server):
    async def main():
        async with client(server, "admin_key") as control:
            start = int(time.time()) - 60
            project = await control.projects.create(name="async keys")
            key = await control.projects.api_keys.create(project.id, name="k")
            async with AsyncStarfire(
                api_key=key.value, base_url=server["base_url"]
            ) as used:
                await used.chat.completions.create(
                    model=MODEL, messages=HELLO, max_tokens=3, temperature=0
                )
                listed = [
                    k.id async for k in await control.projects.api_keys.list(project.id)
                ]
                page = await control.usage.completions(
                    start_time=start, api_key_ids=[key.id], group_by=["api_key_id"]
                )
                results = [r async for b in page for r in b.results]
                credits = await control.credits.retrieve()
                await control.projects.api_keys.delete(project.id, key.id)
                with pytest.raises(AuthenticationError):
                    await used.models.list()
            return key, listed, results, credits

    key, listed, results, credits = asyncio.run(main())
    assert listed == [key.id]
    assert [(r.api_key_id, r.num_model_requests, r.output_tokens) for r in results] == [
        (key.id, 1, 3)
    ]
    assert credits.object_ == "organization.credits"


def test_async_billing_and_budgets(server):
    async def main():
        async with client(server, "admin_key") as control:
            project = await control.projects.create(name="async budget")
            balance = await control.billing.balance()
            ledger = [e async for e in await control.billing.ledger()]
            prices = await control.billing.prices()
            upcoming = await control.billing.upcoming_invoice()
            invoices = [i async for i in await control.billing.invoices()]
            set_ = await control.budgets.set_project(project.id, limit_micros=3_000)
            read = await control.budgets.project(project.id)
            cleared = await control.budgets.clear_project(project.id)
            return balance, ledger, prices, upcoming, invoices, set_, read, cleared

    balance, ledger, prices, upcoming, invoices, set_, read, cleared = asyncio.run(
        main()
    )
    assert balance.object_ == "billing.balance"
    assert all(e.object_ == "billing.ledger_entry" for e in ledger)
    assert MODEL in {p.model for p in prices}
    assert upcoming.status == "draft"
    assert all(i.object_ == "billing.invoice" for i in invoices)
    assert set_.limit_micros == read.limit_micros == 3_000
    assert cleared.limit_micros is None
