"""Chat over a WebSocket (`GET /v1/chat/ws`): one socket carries many requests, each streamed as
`chat.delta` frames and ended by `chat.done` (or `error`). Sync sockets run on
`websockets.sync`, async ones on `websockets.asyncio`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from ._errors import APIConnectionError, APIStreamError, StarfireError, status_error
from ._streaming import ChoiceDelta, ChunkUsage

if TYPE_CHECKING:
    from ._client import AsyncBaseClient, BaseClient

WS_PATH = "/v1/chat/ws"
TICKETS_PATH = "/v1/ws/tickets"


@dataclass
class ChatDeltaFrame:
    """The next piece of choice `index` of request `id`."""

    id: str
    index: int
    delta: ChoiceDelta
    logprobs: Any = None


@dataclass
class ChatDoneFrame:
    """A request's last frame: `finish_reason` is `stop`, `length` or `cancelled` (a list by
    choice index when `n` > 1); `usage` is None when cancelled."""

    id: str
    completion_id: str
    model: str
    finish_reason: str | list[str]
    usage: ChunkUsage | None


def _delta(frame: dict[str, Any]) -> ChatDeltaFrame:
    delta = frame.get("delta") or {}
    return ChatDeltaFrame(
        id=frame["id"],
        index=frame.get("index", 0),
        delta=ChoiceDelta(
            role=delta.get("role"),
            content=delta.get("content"),
        ),
        logprobs=frame.get("logprobs"),
    )


def _done(frame: dict[str, Any]) -> ChatDoneFrame:
    usage = frame.get("usage")
    return ChatDoneFrame(
        id=frame["id"],
        completion_id=frame.get("completion_id", ""),
        model=frame.get("model", ""),
        finish_reason=frame.get("finish_reason", ""),
        usage=ChunkUsage(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            total_tokens=usage["total_tokens"],
        )
        if usage
        else None,
    )


def _ws_url(base_url: str, ticket: str | None) -> str:
    url = "ws" + base_url.removeprefix("http") + WS_PATH
    return f"{url}?ticket={ticket}" if ticket else url


def _refused(exc: InvalidStatus) -> Exception:
    """The typed error of an upgrade the server refused (401, 403, ...)."""
    response = exc.response
    return status_error(
        httpx.Response(
            response.status_code,
            headers=list(response.headers.raw_items()),
            content=bytes(response.body or b""),
        )
    )


def _request_frame(request: dict[str, Any], request_id: str) -> str:
    if "stream" in request and request["stream"] is not True:
        raise StarfireError("WebSocket chat is always streamed: leave `stream` out")
    return json.dumps({**request, "type": "chat.request", "id": request_id})


class _Request:
    """What a socket has received for one request."""

    def __init__(self) -> None:
        self.deltas: collections.deque[ChatDeltaFrame] = collections.deque()
        self.done: ChatDoneFrame | None = None
        self.error: Exception | None = None
        self.event = asyncio.Event() if _in_loop() else None

    def finished(self) -> bool:
        return self.done is not None or self.error is not None


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _dispatch(running: dict[str, _Request], raw: str | bytes) -> None:
    """Routes one server frame to its request."""
    if isinstance(raw, bytes):
        return
    frame = json.loads(raw)
    request_id = frame.get("id")
    if request_id is None:
        # A frame-level error: it cannot be told apart, so it ends every running request.
        error = APIStreamError(frame.get("error") or {}, request_id=None)
        for request in running.values():
            request.error = request.error or error
        return
    request = running.get(request_id)
    if request is None:
        return
    kind = frame.get("type")
    if kind == "chat.delta":
        request.deltas.append(_delta(frame))
    elif kind == "chat.done":
        request.done = _done(frame)
    elif kind == "error":
        request.error = APIStreamError(frame.get("error") or {}, request_id=None)


class ChatSocketStream:
    """One request on a sync socket: iterate it for `ChatDeltaFrame`s; `done` holds the last
    frame (with `usage`) once the iteration ends."""

    def __init__(self, socket: ChatSocket, request_id: str) -> None:
        self.id = request_id
        self.done: ChatDoneFrame | None = None
        self._socket = socket

    def __iter__(self) -> Iterator[ChatDeltaFrame]:
        state = self._socket._running[self.id]
        while True:
            while state.deltas:
                yield state.deltas.popleft()
            if state.finished():
                self._socket._running.pop(self.id, None)
                if state.error is not None:
                    raise state.error
                self.done = state.done
                return
            self._socket._receive()

    def text(self) -> str:
        """The whole text of choice 0 (runs the request to its end)."""
        return "".join(f.delta.content or "" for f in self if f.index == 0)

    def cancel(self) -> None:
        """Stops the request; it ends with `finish_reason` `cancelled`."""
        self._socket._send(json.dumps({"type": "cancel", "id": self.id}))


class ChatSocket:
    """A chat WebSocket (sync). Open it with `client.chat.ws()`, use it as a context manager."""

    def __init__(
        self, connection: ClientConnection, stack: contextlib.ExitStack
    ) -> None:
        self._connection = connection
        self._stack = stack
        self._running: dict[str, _Request] = {}
        self._next_id = 1

    @classmethod
    def connect(cls, client: BaseClient, *, use_ticket: bool = False) -> ChatSocket:
        ticket = None
        headers = client._headers(None)
        if use_ticket:
            ticket = client.request("POST", TICKETS_PATH).json()["ticket"]
            headers.pop("Authorization")
        timeout = client.timeout.connect or 5.0
        # Entered as a context manager, as newer websockets releases require.
        stack = contextlib.ExitStack()
        try:
            connection = stack.enter_context(
                connect(
                    _ws_url(client.base_url, ticket),
                    additional_headers=headers,
                    open_timeout=timeout,
                    max_size=None,
                )
            )
        except InvalidStatus as exc:
            raise _refused(exc) from None
        except (OSError, TimeoutError) as exc:
            raise APIConnectionError(f"WebSocket connection failed: {exc}") from exc
        return cls(connection, stack)

    def chat(
        self, *, request_id: str | None = None, **request: Any
    ) -> ChatSocketStream:
        """Starts a chat request (the body of `POST /v1/chat/completions`)."""
        request_id = request_id or f"r{self._next_id}"
        self._next_id += 1
        if request_id in self._running:
            raise StarfireError(
                f"request id {request_id} is already running on this socket"
            )
        frame = _request_frame(request, request_id)
        self._running[request_id] = _Request()
        self._send(frame)
        return ChatSocketStream(self, request_id)

    def _send(self, frame: str) -> None:
        try:
            self._connection.send(frame)
        except ConnectionClosed as exc:
            raise APIConnectionError(f"The WebSocket closed: {exc}") from exc

    def _receive(self) -> None:
        try:
            raw = self._connection.recv()
        except ConnectionClosed as exc:
            error = APIConnectionError(f"The WebSocket closed: {exc}")
            for state in self._running.values():
                state.error = state.error or error
            return
        _dispatch(self._running, raw)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> ChatSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatSocketStream:
    """One request on an async socket: `async for` its `ChatDeltaFrame`s; `done` holds the last
    frame once the iteration ends."""

    def __init__(self, socket: AsyncChatSocket, request_id: str) -> None:
        self.id = request_id
        self.done: ChatDoneFrame | None = None
        self._socket = socket

    async def __aiter__(self) -> AsyncIterator[ChatDeltaFrame]:
        state = self._socket._running[self.id]
        assert state.event is not None
        while True:
            while state.deltas:
                yield state.deltas.popleft()
            if state.finished():
                self._socket._running.pop(self.id, None)
                if state.error is not None:
                    raise state.error
                self.done = state.done
                return
            state.event.clear()
            await state.event.wait()

    async def text(self) -> str:
        """The whole text of choice 0 (runs the request to its end)."""
        return "".join([f.delta.content or "" async for f in self if f.index == 0])

    async def cancel(self) -> None:
        await self._socket._send(json.dumps({"type": "cancel", "id": self.id}))


class AsyncChatSocket:
    """A chat WebSocket (asyncio): `async with await client.chat.ws() as socket`. A reader task
    routes frames to their requests, so several may run at once."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._running: dict[str, _Request] = {}
        self._next_id = 1
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, client: AsyncBaseClient, *, use_ticket: bool = False
    ) -> AsyncChatSocket:
        ticket = None
        headers = client._headers(None)
        if use_ticket:
            ticket = (await client.request("POST", TICKETS_PATH)).json()["ticket"]
            headers.pop("Authorization")
        timeout = client.timeout.connect or 5.0
        try:
            connection = await async_connect(
                _ws_url(client.base_url, ticket),
                additional_headers=headers,
                open_timeout=timeout,
                max_size=None,
            )
        except InvalidStatus as exc:
            raise _refused(exc) from None
        except (OSError, TimeoutError) as exc:
            raise APIConnectionError(f"WebSocket connection failed: {exc}") from exc
        return cls(connection)

    async def _read(self) -> None:
        error: Exception
        try:
            async for raw in self._connection:
                _dispatch(self._running, raw)
                self._wake()
            error = APIConnectionError("The WebSocket closed.")
        except ConnectionClosed as exc:
            error = APIConnectionError(f"The WebSocket closed: {exc}")
        for state in self._running.values():
            state.error = state.error or error
        self._wake()

    def _wake(self) -> None:
        for state in self._running.values():
            if state.event is not None:
                state.event.set()

    async def chat(
        self, *, request_id: str | None = None, **request: Any
    ) -> AsyncChatSocketStream:
        """Starts a chat request (the body of `POST /v1/chat/completions`)."""
        request_id = request_id or f"r{self._next_id}"
        self._next_id += 1
        if request_id in self._running:
            raise StarfireError(
                f"request id {request_id} is already running on this socket"
            )
        frame = _request_frame(request, request_id)
        self._running[request_id] = _Request()
        await self._send(frame)
        return AsyncChatSocketStream(self, request_id)

    async def _send(self, frame: str) -> None:
        try:
            await self._connection.send(frame)
        except ConnectionClosed as exc:
            raise APIConnectionError(f"The WebSocket closed: {exc}") from exc

    async def close(self) -> None:
        await self._connection.close()
        await self._reader

    async def __aenter__(self) -> AsyncChatSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
