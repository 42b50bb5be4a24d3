from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...types import Response


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/metrics",
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | str | None:
    if response.status_code == 200:
        response_200 = response.text
        return response_200

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | str]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
) -> Response[ErrorBody | str]:
    """Prometheus metrics in the text exposition format: the gateway's (`starfire_http_*`,
    `starfire_usage_*`, `starfire_budget_refusals_total`, `starfire_rate_limit_*`, ...) and the
    scheduler's
    (`starfire:*`, vLLM's names). Open unless `metrics_token` is configured; then it wants
    `Authorization: Bearer <metrics_token>`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | str]
    """

    kwargs = _get_kwargs()

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
) -> ErrorBody | str | None:
    """Prometheus metrics in the text exposition format: the gateway's (`starfire_http_*`,
    `starfire_usage_*`, `starfire_budget_refusals_total`, `starfire_rate_limit_*`, ...) and the
    scheduler's
    (`starfire:*`, vLLM's names). Open unless `metrics_token` is configured; then it wants
    `Authorization: Bearer <metrics_token>`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | str
    """

    return sync_detailed(
        client=client,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
) -> Response[ErrorBody | str]:
    """Prometheus metrics in the text exposition format: the gateway's (`starfire_http_*`,
    `starfire_usage_*`, `starfire_budget_refusals_total`, `starfire_rate_limit_*`, ...) and the
    scheduler's
    (`starfire:*`, vLLM's names). Open unless `metrics_token` is configured; then it wants
    `Authorization: Bearer <metrics_token>`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | str]
    """

    kwargs = _get_kwargs()

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
) -> ErrorBody | str | None:
    """Prometheus metrics in the text exposition format: the gateway's (`starfire_http_*`,
    `starfire_usage_*`, `starfire_budget_refusals_total`, `starfire_rate_limit_*`, ...) and the
    scheduler's
    (`starfire:*`, vLLM's names). Open unless `metrics_token` is configured; then it wants
    `Authorization: Bearer <metrics_token>`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | str
    """

    return (
        await asyncio_detailed(
            client=client,
        )
    ).parsed
