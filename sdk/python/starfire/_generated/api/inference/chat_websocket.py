from http import HTTPStatus
from typing import Any, cast

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    ticket: str | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["ticket"] = ticket

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/chat/ws",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | ErrorBody | None:
    if response.status_code == 101:
        response_101 = cast(Any, None)
        return response_101

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Any | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    ticket: str | Unset = UNSET,
) -> Response[Any | ErrorBody]:
    """Chat completions over a WebSocket.

     Authenticate the upgrade with the API key header (`Authorization: Bearer`, `api-key` or
    `x-api-key`), or, where headers cannot be set (browsers), with `?ticket=` from
    `POST /v1/ws/tickets` (single use, short-lived). A missing or bad credential gets a plain
    HTTP 401 (a credential without the `inference` scope 403) before the upgrade.

    Frames are JSON text frames. One socket carries many requests, one after another or several
    at once with distinct ids (at most `ws_max_concurrent_requests`, default 16, at a time).

    Client frames:
    - `{"type": "chat.request", "id": "r1", ...}`: a chat completion; besides `type` and `id`
      (a string of 1 to 128 bytes, unique among the requests running on the socket) the frame
      holds exactly the body of `POST /v1/chat/completions`. The answer is always streamed:
      `stream` may be left out or `true`; `stream_options` is accepted, and `chat.done` always
      carries `usage`.
    - `{"type": "cancel", "id": "r1"}`: stops that request; its generation is aborted within one
      engine step and it ends with a `chat.done` whose `finish_reason` is `cancelled`.

    Server frames:
    - `{"type": "chat.delta", "id": "r1", "index": 0, "delta": {"role": "assistant",
      "content": "Hel"}, "logprobs": null}`: the next piece of choice `index` (`role` only on a
      choice's first delta; `logprobs` as in a `chat.completion.chunk` when requested).
    - `{"type": "chat.done", "id": "r1", "completion_id": "chatcmpl-...", "model": "...",
      "finish_reason": "stop", "usage": {...}}`: the request's last frame. `finish_reason` is
      `stop`, `length` or `cancelled`, one string with one choice and an array by choice index
      when `n` > 1; `usage` as in a chat completion (null when cancelled).
    - `{"type": "error", "id": "r1", "error": {"message", "type", "param", "code"}}`: the request
      failed; `error` is exactly what the REST route answers (`invalid_request_error`,
      `model_not_found`, `context_length_exceeded`, ...), and it is the request's last frame. A
      frame-level error (not JSON, unknown `type`, missing or duplicate `id`, cancel of an id that
      is not running, binary frame) has `"id": null`. No error closes the socket.

    The server pings every `ws_ping_interval_secs` (default 30) and answers pings. A socket with
    no request running and no frame from the client (pongs aside) for `ws_idle_timeout_secs`
    (default 300) is closed with close code 1000 (`idle timeout`); a frame larger than
    `max_body_bytes` closes it with 1009. Closing the socket aborts its running generations.

    Args:
        ticket (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
    """

    kwargs = _get_kwargs(
        ticket=ticket,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    ticket: str | Unset = UNSET,
) -> Any | ErrorBody | None:
    """Chat completions over a WebSocket.

     Authenticate the upgrade with the API key header (`Authorization: Bearer`, `api-key` or
    `x-api-key`), or, where headers cannot be set (browsers), with `?ticket=` from
    `POST /v1/ws/tickets` (single use, short-lived). A missing or bad credential gets a plain
    HTTP 401 (a credential without the `inference` scope 403) before the upgrade.

    Frames are JSON text frames. One socket carries many requests, one after another or several
    at once with distinct ids (at most `ws_max_concurrent_requests`, default 16, at a time).

    Client frames:
    - `{"type": "chat.request", "id": "r1", ...}`: a chat completion; besides `type` and `id`
      (a string of 1 to 128 bytes, unique among the requests running on the socket) the frame
      holds exactly the body of `POST /v1/chat/completions`. The answer is always streamed:
      `stream` may be left out or `true`; `stream_options` is accepted, and `chat.done` always
      carries `usage`.
    - `{"type": "cancel", "id": "r1"}`: stops that request; its generation is aborted within one
      engine step and it ends with a `chat.done` whose `finish_reason` is `cancelled`.

    Server frames:
    - `{"type": "chat.delta", "id": "r1", "index": 0, "delta": {"role": "assistant",
      "content": "Hel"}, "logprobs": null}`: the next piece of choice `index` (`role` only on a
      choice's first delta; `logprobs` as in a `chat.completion.chunk` when requested).
    - `{"type": "chat.done", "id": "r1", "completion_id": "chatcmpl-...", "model": "...",
      "finish_reason": "stop", "usage": {...}}`: the request's last frame. `finish_reason` is
      `stop`, `length` or `cancelled`, one string with one choice and an array by choice index
      when `n` > 1; `usage` as in a chat completion (null when cancelled).
    - `{"type": "error", "id": "r1", "error": {"message", "type", "param", "code"}}`: the request
      failed; `error` is exactly what the REST route answers (`invalid_request_error`,
      `model_not_found`, `context_length_exceeded`, ...), and it is the request's last frame. A
      frame-level error (not JSON, unknown `type`, missing or duplicate `id`, cancel of an id that
      is not running, binary frame) has `"id": null`. No error closes the socket.

    The server pings every `ws_ping_interval_secs` (default 30) and answers pings. A socket with
    no request running and no frame from the client (pongs aside) for `ws_idle_timeout_secs`
    (default 300) is closed with close code 1000 (`idle timeout`); a frame larger than
    `max_body_bytes` closes it with 1009. Closing the socket aborts its running generations.

    Args:
        ticket (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
    """

    return sync_detailed(
        client=client,
        ticket=ticket,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    ticket: str | Unset = UNSET,
) -> Response[Any | ErrorBody]:
    """Chat completions over a WebSocket.

     Authenticate the upgrade with the API key header (`Authorization: Bearer`, `api-key` or
    `x-api-key`), or, where headers cannot be set (browsers), with `?ticket=` from
    `POST /v1/ws/tickets` (single use, short-lived). A missing or bad credential gets a plain
    HTTP 401 (a credential without the `inference` scope 403) before the upgrade.

    Frames are JSON text frames. One socket carries many requests, one after another or several
    at once with distinct ids (at most `ws_max_concurrent_requests`, default 16, at a time).

    Client frames:
    - `{"type": "chat.request", "id": "r1", ...}`: a chat completion; besides `type` and `id`
      (a string of 1 to 128 bytes, unique among the requests running on the socket) the frame
      holds exactly the body of `POST /v1/chat/completions`. The answer is always streamed:
      `stream` may be left out or `true`; `stream_options` is accepted, and `chat.done` always
      carries `usage`.
    - `{"type": "cancel", "id": "r1"}`: stops that request; its generation is aborted within one
      engine step and it ends with a `chat.done` whose `finish_reason` is `cancelled`.

    Server frames:
    - `{"type": "chat.delta", "id": "r1", "index": 0, "delta": {"role": "assistant",
      "content": "Hel"}, "logprobs": null}`: the next piece of choice `index` (`role` only on a
      choice's first delta; `logprobs` as in a `chat.completion.chunk` when requested).
    - `{"type": "chat.done", "id": "r1", "completion_id": "chatcmpl-...", "model": "...",
      "finish_reason": "stop", "usage": {...}}`: the request's last frame. `finish_reason` is
      `stop`, `length` or `cancelled`, one string with one choice and an array by choice index
      when `n` > 1; `usage` as in a chat completion (null when cancelled).
    - `{"type": "error", "id": "r1", "error": {"message", "type", "param", "code"}}`: the request
      failed; `error` is exactly what the REST route answers (`invalid_request_error`,
      `model_not_found`, `context_length_exceeded`, ...), and it is the request's last frame. A
      frame-level error (not JSON, unknown `type`, missing or duplicate `id`, cancel of an id that
      is not running, binary frame) has `"id": null`. No error closes the socket.

    The server pings every `ws_ping_interval_secs` (default 30) and answers pings. A socket with
    no request running and no frame from the client (pongs aside) for `ws_idle_timeout_secs`
    (default 300) is closed with close code 1000 (`idle timeout`); a frame larger than
    `max_body_bytes` closes it with 1009. Closing the socket aborts its running generations.

    Args:
        ticket (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
    """

    kwargs = _get_kwargs(
        ticket=ticket,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    ticket: str | Unset = UNSET,
) -> Any | ErrorBody | None:
    """Chat completions over a WebSocket.

     Authenticate the upgrade with the API key header (`Authorization: Bearer`, `api-key` or
    `x-api-key`), or, where headers cannot be set (browsers), with `?ticket=` from
    `POST /v1/ws/tickets` (single use, short-lived). A missing or bad credential gets a plain
    HTTP 401 (a credential without the `inference` scope 403) before the upgrade.

    Frames are JSON text frames. One socket carries many requests, one after another or several
    at once with distinct ids (at most `ws_max_concurrent_requests`, default 16, at a time).

    Client frames:
    - `{"type": "chat.request", "id": "r1", ...}`: a chat completion; besides `type` and `id`
      (a string of 1 to 128 bytes, unique among the requests running on the socket) the frame
      holds exactly the body of `POST /v1/chat/completions`. The answer is always streamed:
      `stream` may be left out or `true`; `stream_options` is accepted, and `chat.done` always
      carries `usage`.
    - `{"type": "cancel", "id": "r1"}`: stops that request; its generation is aborted within one
      engine step and it ends with a `chat.done` whose `finish_reason` is `cancelled`.

    Server frames:
    - `{"type": "chat.delta", "id": "r1", "index": 0, "delta": {"role": "assistant",
      "content": "Hel"}, "logprobs": null}`: the next piece of choice `index` (`role` only on a
      choice's first delta; `logprobs` as in a `chat.completion.chunk` when requested).
    - `{"type": "chat.done", "id": "r1", "completion_id": "chatcmpl-...", "model": "...",
      "finish_reason": "stop", "usage": {...}}`: the request's last frame. `finish_reason` is
      `stop`, `length` or `cancelled`, one string with one choice and an array by choice index
      when `n` > 1; `usage` as in a chat completion (null when cancelled).
    - `{"type": "error", "id": "r1", "error": {"message", "type", "param", "code"}}`: the request
      failed; `error` is exactly what the REST route answers (`invalid_request_error`,
      `model_not_found`, `context_length_exceeded`, ...), and it is the request's last frame. A
      frame-level error (not JSON, unknown `type`, missing or duplicate `id`, cancel of an id that
      is not running, binary frame) has `"id": null`. No error closes the socket.

    The server pings every `ws_ping_interval_secs` (default 30) and answers pings. A socket with
    no request running and no frame from the client (pongs aside) for `ws_idle_timeout_secs`
    (default 300) is closed with close code 1000 (`idle timeout`); a frame larger than
    `max_body_bytes` closes it with 1009. Closing the socket aborts its running generations.

    Args:
        ticket (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
    """

    return (
        await asyncio_detailed(
            client=client,
            ticket=ticket,
        )
    ).parsed
