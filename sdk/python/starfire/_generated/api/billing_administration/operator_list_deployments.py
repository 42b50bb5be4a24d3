from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.deployment_state import DeploymentState
from ...models.error_body import ErrorBody
from ...models.operator_deployment_list import OperatorDeploymentList
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    state: DeploymentState | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    json_state: str | Unset = UNSET
    if not isinstance(state, Unset):
        json_state = state.value

    params["state"] = json_state

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/billing/admin/deployments",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | OperatorDeploymentList | None:
    if response.status_code == 200:
        response_200 = OperatorDeploymentList.from_dict(response.json())

        return response_200

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
) -> Response[ErrorBody | OperatorDeploymentList]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    state: DeploymentState | Unset = UNSET,
) -> Response[ErrorBody | OperatorDeploymentList]:
    """Every organization's deployments in one state, oldest first (operator only): what waits
    for approval by default.

    Args:
        state (DeploymentState | Unset): A deployment's state.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | OperatorDeploymentList]
    """

    kwargs = _get_kwargs(
        state=state,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    state: DeploymentState | Unset = UNSET,
) -> ErrorBody | OperatorDeploymentList | None:
    """Every organization's deployments in one state, oldest first (operator only): what waits
    for approval by default.

    Args:
        state (DeploymentState | Unset): A deployment's state.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | OperatorDeploymentList
    """

    return sync_detailed(
        client=client,
        state=state,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    state: DeploymentState | Unset = UNSET,
) -> Response[ErrorBody | OperatorDeploymentList]:
    """Every organization's deployments in one state, oldest first (operator only): what waits
    for approval by default.

    Args:
        state (DeploymentState | Unset): A deployment's state.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | OperatorDeploymentList]
    """

    kwargs = _get_kwargs(
        state=state,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    state: DeploymentState | Unset = UNSET,
) -> ErrorBody | OperatorDeploymentList | None:
    """Every organization's deployments in one state, oldest first (operator only): what waits
    for approval by default.

    Args:
        state (DeploymentState | Unset): A deployment's state.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | OperatorDeploymentList
    """

    return (
        await asyncio_detailed(
            client=client,
            state=state,
        )
    ).parsed
