from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.usage_page_cost_result import UsagePageCostResult
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    start_time: int,
    end_time: int | Unset = UNSET,
    bucket_width: str | Unset = UNSET,
    project_ids: list[str] | Unset = UNSET,
    group_by: list[str] | Unset = UNSET,
    limit: int | Unset = UNSET,
    page: str | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["start_time"] = start_time

    params["end_time"] = end_time

    params["bucket_width"] = bucket_width

    json_project_ids: list[str] | Unset = UNSET
    if not isinstance(project_ids, Unset):
        json_project_ids = project_ids

    params["project_ids"] = json_project_ids

    json_group_by: list[str] | Unset = UNSET
    if not isinstance(group_by, Unset):
        json_group_by = group_by

    params["group_by"] = json_group_by

    params["limit"] = limit

    params["page"] = page

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/organization/costs",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | UsagePageCostResult | None:
    if response.status_code == 200:
        response_200 = UsagePageCostResult.from_dict(response.json())

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

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | UsagePageCostResult]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    start_time: int,
    end_time: int | Unset = UNSET,
    bucket_width: str | Unset = UNSET,
    project_ids: list[str] | Unset = UNSET,
    group_by: list[str] | Unset = UNSET,
    limit: int | Unset = UNSET,
    page: str | Unset = UNSET,
) -> Response[ErrorBody | UsagePageCostResult]:
    """What the organization spent, per day (all endpoints; `line_item` is the model).

    Args:
        start_time (int):
        end_time (int | Unset):
        bucket_width (str | Unset):
        project_ids (list[str] | Unset):
        group_by (list[str] | Unset):
        limit (int | Unset):
        page (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | UsagePageCostResult]
    """

    kwargs = _get_kwargs(
        start_time=start_time,
        end_time=end_time,
        bucket_width=bucket_width,
        project_ids=project_ids,
        group_by=group_by,
        limit=limit,
        page=page,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    start_time: int,
    end_time: int | Unset = UNSET,
    bucket_width: str | Unset = UNSET,
    project_ids: list[str] | Unset = UNSET,
    group_by: list[str] | Unset = UNSET,
    limit: int | Unset = UNSET,
    page: str | Unset = UNSET,
) -> ErrorBody | UsagePageCostResult | None:
    """What the organization spent, per day (all endpoints; `line_item` is the model).

    Args:
        start_time (int):
        end_time (int | Unset):
        bucket_width (str | Unset):
        project_ids (list[str] | Unset):
        group_by (list[str] | Unset):
        limit (int | Unset):
        page (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | UsagePageCostResult
    """

    return sync_detailed(
        client=client,
        start_time=start_time,
        end_time=end_time,
        bucket_width=bucket_width,
        project_ids=project_ids,
        group_by=group_by,
        limit=limit,
        page=page,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    start_time: int,
    end_time: int | Unset = UNSET,
    bucket_width: str | Unset = UNSET,
    project_ids: list[str] | Unset = UNSET,
    group_by: list[str] | Unset = UNSET,
    limit: int | Unset = UNSET,
    page: str | Unset = UNSET,
) -> Response[ErrorBody | UsagePageCostResult]:
    """What the organization spent, per day (all endpoints; `line_item` is the model).

    Args:
        start_time (int):
        end_time (int | Unset):
        bucket_width (str | Unset):
        project_ids (list[str] | Unset):
        group_by (list[str] | Unset):
        limit (int | Unset):
        page (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | UsagePageCostResult]
    """

    kwargs = _get_kwargs(
        start_time=start_time,
        end_time=end_time,
        bucket_width=bucket_width,
        project_ids=project_ids,
        group_by=group_by,
        limit=limit,
        page=page,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    start_time: int,
    end_time: int | Unset = UNSET,
    bucket_width: str | Unset = UNSET,
    project_ids: list[str] | Unset = UNSET,
    group_by: list[str] | Unset = UNSET,
    limit: int | Unset = UNSET,
    page: str | Unset = UNSET,
) -> ErrorBody | UsagePageCostResult | None:
    """What the organization spent, per day (all endpoints; `line_item` is the model).

    Args:
        start_time (int):
        end_time (int | Unset):
        bucket_width (str | Unset):
        project_ids (list[str] | Unset):
        group_by (list[str] | Unset):
        limit (int | Unset):
        page (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | UsagePageCostResult
    """

    return (
        await asyncio_detailed(
            client=client,
            start_time=start_time,
            end_time=end_time,
            bucket_width=bucket_width,
            project_ids=project_ids,
            group_by=group_by,
            limit=limit,
            page=page,
        )
    ).parsed
