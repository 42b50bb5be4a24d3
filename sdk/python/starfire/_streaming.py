"""Server-sent events and the typed chunks of a streamed chat completion."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from ._errors import APIConnectionError, APIStreamError

T = TypeVar("T")


@dataclass
class FunctionDelta:
    """What a piece adds to a call's function: its name (first piece) or more arguments."""

    name: str | None = None
    arguments: str | None = None


@dataclass
class ToolCallDelta:
    """A piece of a streamed tool call: the first of each call has its `id`, `type` and
    `function.name`; the next ones more of `function.arguments`."""

    index: int
    function: FunctionDelta
    id: str | None = None
    type: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCallDelta:
        function = data.get("function") or {}
        return cls(
            index=data.get("index", 0),
            id=data.get("id"),
            type=data.get("type"),
            function=FunctionDelta(
                name=function.get("name"), arguments=function.get("arguments")
            ),
        )


@dataclass
class ChoiceDelta:
    """What a chunk adds to a choice: the role (first chunk only), a piece of content, or a
    piece of a tool call."""

    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


@dataclass
class FunctionCall:
    name: str
    arguments: str

    def parsed_arguments(self) -> Any:
        """The arguments (JSON text) parsed."""
        return json.loads(self.arguments)


@dataclass
class ToolCall:
    """A whole tool call, as `ToolCallAccumulator` assembles it."""

    id: str
    function: FunctionCall
    type: str = "function"


class ToolCallAccumulator:
    """Assembles the tool calls of one streamed choice from its deltas:

    calls = ToolCallAccumulator()
    for chunk in stream:
        calls.add(chunk.choices[0].delta)
    calls.calls  # [ToolCall(id=..., function=FunctionCall(name=..., arguments=...))]
    """

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    def add(self, delta: ChoiceDelta) -> None:
        for piece in delta.tool_calls or []:
            while len(self.calls) <= piece.index:
                self.calls.append(ToolCall(id="", function=FunctionCall(name="", arguments="")))
            call = self.calls[piece.index]
            if piece.id is not None:
                call.id = piece.id
            if piece.type is not None:
                call.type = piece.type
            if piece.function.name is not None:
                call.function.name += piece.function.name
            if piece.function.arguments is not None:
                call.function.arguments += piece.function.arguments


@dataclass
class ChunkChoice:
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: Any = None


@dataclass
class ChunkUsage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class ChatCompletionChunk:
    """One `chat.completion.chunk` event."""

    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice] = field(default_factory=list)
    system_fingerprint: str | None = None
    usage: ChunkUsage | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatCompletionChunk:
        choices = [
            ChunkChoice(
                index=c.get("index", 0),
                delta=ChoiceDelta(
                    role=(c.get("delta") or {}).get("role"),
                    content=(c.get("delta") or {}).get("content"),
                    tool_calls=[
                        ToolCallDelta.from_dict(t)
                        for t in (c.get("delta") or {}).get("tool_calls") or []
                    ]
                    or None,
                ),
                finish_reason=c.get("finish_reason"),
                logprobs=c.get("logprobs"),
            )
            for c in data.get("choices") or []
        ]
        usage = data.get("usage")
        return cls(
            id=data["id"],
            object=data.get("object", "chat.completion.chunk"),
            created=data.get("created", 0),
            model=data.get("model", ""),
            choices=choices,
            system_fingerprint=data.get("system_fingerprint"),
            usage=ChunkUsage(
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                total_tokens=usage["total_tokens"],
            )
            if usage
            else None,
        )


class _SseParser:
    """Collects the `data` fields of one event; `line` returns the event's data at its end."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def line(self, line: str) -> str | None:
        if line == "":
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self.data.append(value.removeprefix(" "))
        return None

    def flush(self) -> str | None:
        if not self.data:
            return None
        data, self.data = "\n".join(self.data), []
        return data


def iter_sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The `data` of each event of a server-sent-event stream (multi-line data joined by
    newlines; comments, `event:`, `id:` and `retry:` fields ignored)."""
    parser = _SseParser()
    for line in lines:
        data = parser.line(line)
        if data is not None:
            yield data
    data = parser.flush()
    if data is not None:
        yield data


async def aiter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """`iter_sse_data` over an async iterator of lines."""
    parser = _SseParser()
    async for line in lines:
        data = parser.line(line)
        if data is not None:
            yield data
    data = parser.flush()
    if data is not None:
        yield data


def _parse_event(data: str, request_id: str | None) -> Any:
    """An event's payload; an `error` event raises `APIStreamError`."""
    payload = json.loads(data)
    if isinstance(payload, dict) and "error" in payload:
        raise APIStreamError(payload["error"] or {}, request_id=request_id)
    return payload


class Stream(Generic[T]):
    """An iterator of typed chunks over an open response; close it (or use `with`) to stop the
    generation early. Never retried once it has started."""

    def __init__(self, response: httpx.Response, parse: Any) -> None:
        self.response = response
        self.request_id: str | None = response.headers.get("x-request-id")
        self._parse = parse
        self._iterator = self._events()

    def _events(self) -> Iterator[T]:
        try:
            for data in iter_sse_data(self.response.iter_lines()):
                if data == "[DONE]":
                    break
                yield self._parse(_parse_event(data, self.request_id))
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"The stream broke: {exc}", request_id=self.request_id
            ) from exc
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[T]:
        return self._iterator

    def __next__(self) -> T:
        return next(self._iterator)

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(Generic[T]):
    """The asyncio twin of `Stream`: `async for` over typed chunks; `await close()` (or
    `async with`) stops the generation early. Never retried once it has started."""

    def __init__(self, response: httpx.Response, parse: Any) -> None:
        self.response = response
        self.request_id: str | None = response.headers.get("x-request-id")
        self._parse = parse
        self._iterator = self._events()

    async def _events(self) -> AsyncIterator[T]:
        try:
            async for data in aiter_sse_data(self.response.aiter_lines()):
                if data == "[DONE]":
                    break
                yield self._parse(_parse_event(data, self.request_id))
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"The stream broke: {exc}", request_id=self.request_id
            ) from exc
        finally:
            await self.response.aclose()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterator

    async def __anext__(self) -> T:
        return await self._iterator.__anext__()

    async def close(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
