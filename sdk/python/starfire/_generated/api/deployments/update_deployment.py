from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.deployment_object import DeploymentObject
from ...models.deployment_update import DeploymentUpdate
from ...models.error_body import ErrorBody
from ...types import Response


def _get_kwargs(
    deployment_id: str,
    *,
    body: DeploymentUpdate,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/organization/deployments/{deployment_id}".format(
            deployment_id=quote(str(deployment_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> DeploymentObject | ErrorBody | None:
    if response.status_code == 200:
        response_200 = DeploymentObject.from_dict(response.json())

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

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[DeploymentObject | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    deployment_id: str,
    *,
    client: AuthenticatedClient,
    body: DeploymentUpdate,
) -> Response[DeploymentObject | ErrorBody]:
    """Change how many replicas a deployment runs. A serving deployment goes to `scaling` until
    the new count is ready; one that is not running yet keeps its state.

    Args:
        deployment_id (str):
        body (DeploymentUpdate): New replicas for a deployment.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DeploymentObject | ErrorBody]
    """

    kwargs = _get_kwargs(
        deployment_id=deployment_id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    deployment_id: str,
    *,
    client: AuthenticatedClient,
    body: DeploymentUpdate,
) -> DeploymentObject | ErrorBody | None:
    """Change how many replicas a deployment runs. A serving deployment goes to `scaling` until
    the new count is ready; one that is not running yet keeps its state.

    Args:
        deployment_id (str):
        body (DeploymentUpdate): New replicas for a deployment.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DeploymentObject | ErrorBody
    """

    return sync_detailed(
        deployment_id=deployment_id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    deployment_id: str,
    *,
    client: AuthenticatedClient,
    body: DeploymentUpdate,
) -> Response[DeploymentObject | ErrorBody]:
    """Change how many replicas a deployment runs. A serving deployment goes to `scaling` until
    the new count is ready; one that is not running yet keeps its state.

    Args:
        deployment_id (str):
        body (DeploymentUpdate): New replicas for a deployment.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DeploymentObject | ErrorBody]
    """

    kwargs = _get_kwargs(
        deployment_id=deployment_id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    deployment_id: str,
    *,
    client: AuthenticatedClient,
    body: DeploymentUpdate,
) -> DeploymentObject | ErrorBody | None:
    """Change how many replicas a deployment runs. A serving deployment goes to `scaling` until
    the new count is ready; one that is not running yet keeps its state.

    Args:
        deployment_id (str):
        body (DeploymentUpdate): New replicas for a deployment.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DeploymentObject | ErrorBody
    """

    return (
        await asyncio_detailed(
            deployment_id=deployment_id,
            client=client,
            body=body,
        )
    ).parsed
