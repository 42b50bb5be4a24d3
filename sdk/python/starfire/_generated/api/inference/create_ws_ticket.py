from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.ws_ticket import WsTicket
from ...types import Response


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/ws/tickets",
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | WsTicket | None:
    if response.status_code == 200:
        response_200 = WsTicket.from_dict(response.json())

        return response_200

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
) -> Response[ErrorBody | WsTicket]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | WsTicket]:
    """Create a WebSocket ticket.

     A ticket is a short-lived (`ws_ticket_ttl_secs`, default 60 s), single-use credential for `GET
    /v1/chat/ws?ticket=...`, for clients such as browsers that cannot set
    headers on a WebSocket. The ticket acts as the credential that created it (an API key with
    the `inference` scope, or a console session), which is checked again when the ticket is
    used. Only a hash of the ticket is stored.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | WsTicket]
    """

    kwargs = _get_kwargs()

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
) -> ErrorBody | WsTicket | None:
    """Create a WebSocket ticket.

     A ticket is a short-lived (`ws_ticket_ttl_secs`, default 60 s), single-use credential for `GET
    /v1/chat/ws?ticket=...`, for clients such as browsers that cannot set
    headers on a WebSocket. The ticket acts as the credential that created it (an API key with
    the `inference` scope, or a console session), which is checked again when the ticket is
    used. Only a hash of the ticket is stored.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | WsTicket
    """

    return sync_detailed(
        client=client,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | WsTicket]:
    """Create a WebSocket ticket.

     A ticket is a short-lived (`ws_ticket_ttl_secs`, default 60 s), single-use credential for `GET
    /v1/chat/ws?ticket=...`, for clients such as browsers that cannot set
    headers on a WebSocket. The ticket acts as the credential that created it (an API key with
    the `inference` scope, or a console session), which is checked again when the ticket is
    used. Only a hash of the ticket is stored.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | WsTicket]
    """

    kwargs = _get_kwargs()

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
) -> ErrorBody | WsTicket | None:
    """Create a WebSocket ticket.

     A ticket is a short-lived (`ws_ticket_ttl_secs`, default 60 s), single-use credential for `GET
    /v1/chat/ws?ticket=...`, for clients such as browsers that cannot set
    headers on a WebSocket. The ticket acts as the credential that created it (an API key with
    the `inference` scope, or a console session), which is checked again when the ticket is
    used. Only a hash of the ticket is stored.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | WsTicket
    """

    return (
        await asyncio_detailed(
            client=client,
        )
    ).parsed
