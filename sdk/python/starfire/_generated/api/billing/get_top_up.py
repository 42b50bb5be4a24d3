from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.top_up_object import TopUpObject
from ...types import Response


def _get_kwargs(
    top_up_id: str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/billing/top_ups/{top_up_id}".format(
            top_up_id=quote(str(top_up_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | TopUpObject | None:
    if response.status_code == 200:
        response_200 = TopUpObject.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | TopUpObject]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    top_up_id: str,
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | TopUpObject]:
    """One of the organization's top-ups.

    Args:
        top_up_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | TopUpObject]
    """

    kwargs = _get_kwargs(
        top_up_id=top_up_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    top_up_id: str,
    *,
    client: AuthenticatedClient,
) -> ErrorBody | TopUpObject | None:
    """One of the organization's top-ups.

    Args:
        top_up_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | TopUpObject
    """

    return sync_detailed(
        top_up_id=top_up_id,
        client=client,
    ).parsed


async def asyncio_detailed(
    top_up_id: str,
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | TopUpObject]:
    """One of the organization's top-ups.

    Args:
        top_up_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | TopUpObject]
    """

    kwargs = _get_kwargs(
        top_up_id=top_up_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    top_up_id: str,
    *,
    client: AuthenticatedClient,
) -> ErrorBody | TopUpObject | None:
    """One of the organization's top-ups.

    Args:
        top_up_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | TopUpObject
    """

    return (
        await asyncio_detailed(
            top_up_id=top_up_id,
            client=client,
        )
    ).parsed
