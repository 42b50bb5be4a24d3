"""The asyncio twins of the resources in `_resources.py`: the same operations, awaited; lists
as `AsyncPage`s (`async for` walks every page) and streams as `AsyncStream`s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from ._generated.api.api_keys import (
    create_project_key,
    delete_key_budget,
    delete_project_key,
    get_key_budget,
    get_project_key,
    list_project_keys,
    modify_project_key,
    set_key_budget,
)
from ._generated.api.billing import (
    create_top_up,
    get_balance,
    get_invoice,
    get_top_up,
    list_invoices,
    list_ledger,
    list_prices,
    list_top_ups,
    upcoming_invoice,
)
from ._generated.api.deployments import (
    create_deployment,
    delete_deployment,
    get_deployment,
    list_deployment_events,
    list_deployments,
    start_deployment,
    stop_deployment,
    update_deployment,
)
from ._generated.api.inference import (
    create_chat_completion,
    create_ws_ticket,
    list_models,
    retrieve_model,
)
from ._generated.api.projects import (
    archive_project,
    create_project,
    delete_project_budget,
    get_project,
    get_project_budget,
    list_projects,
    modify_project,
    set_project_budget,
)
from ._generated.api.usage import (
    costs,
    delete_organization_budget,
    get_credits,
    get_organization_budget,
    set_organization_budget,
    usage_completions,
    usage_embeddings,
)
from ._generated.models import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyObject,
    ApiKeyUpdate,
    BalanceObject,
    BudgetObject,
    BudgetUpdate,
    ChatCompletion,
    ChatCompletionRequest,
    CreatedApiKey,
    CreditsObject,
    DeletedObject,
    DeploymentCreate,
    DeploymentEventList,
    DeploymentEventObject,
    DeploymentList,
    DeploymentObject,
    DeploymentUpdate,
    InvoiceList,
    InvoiceObject,
    KeyLimits,
    LedgerEntryList,
    LedgerEntryObject,
    ModelList,
    ModelObject,
    PriceList,
    PriceObject,
    TopUpCreate,
    TopUpList,
    TopUpObject,
    ProjectCreate,
    ProjectList,
    ProjectObject,
    ProjectUpdate,
    ReplicaRange,
    Scope,
    UsageBucketCompletionsUsageResult,
    UsageBucketCostResult,
    UsageBucketEmbeddingsUsageResult,
    UsagePageCompletionsUsageResult,
    UsagePageCostResult,
    UsagePageEmbeddingsUsageResult,
    WsTicket,
)
from ._generated.types import UNSET
from ._pagination import AsyncPage
from ._resources import _CHAT_FIELDS, opt
from ._streaming import AsyncStream, ChatCompletionChunk
from ._websocket import AsyncChatSocket

if TYPE_CHECKING:
    from ._client import AsyncBaseClient


async def _send(client: AsyncBaseClient, kwargs: dict[str, Any], **options: Any) -> Any:
    response = await client.request(
        kwargs["method"],
        kwargs["url"],
        json=kwargs.get("json"),
        params=kwargs.get("params"),
        **options,
    )
    return response.json()


class AsyncChatCompletions:
    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: Literal[True],
        **params: Any,
    ) -> AsyncStream[ChatCompletionChunk]: ...

    async def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: bool = False,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """Creates a chat completion. With `stream=True`, returns an async iterator of
        `ChatCompletionChunk` (close it, or use `async with`, to stop early)."""
        unknown = sorted(set(params) - _CHAT_FIELDS)
        if unknown:
            raise TypeError(
                f"unknown chat completion parameter(s): {', '.join(unknown)}"
            )
        body = {"model": model, "messages": messages, **params}
        if stream:
            body["stream"] = True
        kwargs = create_chat_completion._get_kwargs(
            body=ChatCompletionRequest(model=model, messages=[])
        )
        response = await self._client.request(
            kwargs["method"],
            kwargs["url"],
            json=body,
            stream=stream,
            idempotency_key=idempotency_key,
            timeout=timeout,
            max_retries=max_retries,
            headers={"Accept": "text/event-stream"} if stream else None,
        )
        if stream:
            return AsyncStream(response, ChatCompletionChunk.from_dict)
        return ChatCompletion.from_dict(response.json())


class AsyncChat:
    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client
        self.completions = AsyncChatCompletions(client)

    async def ws(self, *, use_ticket: bool = False) -> AsyncChatSocket:
        """Opens a chat WebSocket (`GET /v1/chat/ws`): `async with await client.chat.ws()`."""
        return await AsyncChatSocket.connect(self._client, use_ticket=use_ticket)


class AsyncModels:
    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def list(self) -> list[ModelObject]:
        return list(
            ModelList.from_dict(
                await _send(self._client, list_models._get_kwargs())
            ).data
        )

    async def retrieve(self, model: str) -> ModelObject:
        return ModelObject.from_dict(
            await _send(self._client, retrieve_model._get_kwargs(model))
        )


class AsyncApiKeys:
    """A project's API keys."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def create(
        self,
        project_id: str,
        *,
        name: str,
        scopes: list[str] | None = None,
        expires_at: int | None = None,
        limits: dict[str, int | None] | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedApiKey:
        """Creates a key; `value` of the answer is the only time the secret is shown."""
        body = ApiKeyCreate(
            name=name,
            limits=KeyLimits.from_dict(limits) if limits is not None else UNSET,
            scopes=[Scope(s) for s in scopes] if scopes is not None else UNSET,
            expires_at=opt(expires_at),
        )
        kwargs = create_project_key._get_kwargs(project_id, body=body)
        return CreatedApiKey.from_dict(
            await _send(self._client, kwargs, idempotency_key=idempotency_key)
        )

    async def list(
        self, project_id: str, *, limit: int | None = None
    ) -> AsyncPage[ApiKeyObject]:
        """The project's live keys; `async for` over the page walks all of them."""

        async def fetch(after: str | None) -> AsyncPage[ApiKeyObject]:
            kwargs = list_project_keys._get_kwargs(
                project_id, limit=opt(limit), after=opt(after)
            )
            return AsyncPage(
                ApiKeyList.from_dict(await _send(self._client, kwargs)), fetch
            )

        return await fetch(None)

    async def retrieve(self, project_id: str, key_id: str) -> ApiKeyObject:
        kwargs = get_project_key._get_kwargs(project_id, key_id)
        return ApiKeyObject.from_dict(await _send(self._client, kwargs))

    async def update(
        self,
        project_id: str,
        key_id: str,
        *,
        name: str | None = None,
        limits: dict[str, int | None] | None = None,
    ) -> ApiKeyObject:
        """Renames a key and/or replaces its rate limits (`rpm`, `tpm`, `concurrency`)."""
        body = ApiKeyUpdate(
            name=opt(name),
            limits=KeyLimits.from_dict(limits) if limits is not None else UNSET,
        )
        kwargs = modify_project_key._get_kwargs(project_id, key_id, body=body)
        return ApiKeyObject.from_dict(await _send(self._client, kwargs))

    async def delete(self, project_id: str, key_id: str) -> DeletedObject:
        """Revokes a key: it stops working at once."""
        kwargs = delete_project_key._get_kwargs(project_id, key_id)
        return DeletedObject.from_dict(await _send(self._client, kwargs))


class AsyncProjects:
    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client
        self.api_keys = AsyncApiKeys(client)

    async def create(
        self, *, name: str, idempotency_key: str | None = None
    ) -> ProjectObject:
        kwargs = create_project._get_kwargs(body=ProjectCreate(name=name))
        return ProjectObject.from_dict(
            await _send(self._client, kwargs, idempotency_key=idempotency_key)
        )

    async def list(
        self, *, limit: int | None = None, include_archived: bool | None = None
    ) -> AsyncPage[ProjectObject]:
        """The organization's projects; `async for` over the page walks all of them."""

        async def fetch(after: str | None) -> AsyncPage[ProjectObject]:
            kwargs = list_projects._get_kwargs(
                limit=opt(limit),
                after=opt(after),
                include_archived=opt(include_archived),
            )
            return AsyncPage(
                ProjectList.from_dict(await _send(self._client, kwargs)), fetch
            )

        return await fetch(None)

    async def retrieve(self, project_id: str) -> ProjectObject:
        kwargs = get_project._get_kwargs(project_id)
        return ProjectObject.from_dict(await _send(self._client, kwargs))

    async def update(self, project_id: str, *, name: str) -> ProjectObject:
        kwargs = modify_project._get_kwargs(project_id, body=ProjectUpdate(name=name))
        return ProjectObject.from_dict(await _send(self._client, kwargs))

    async def archive(self, project_id: str) -> ProjectObject:
        kwargs = archive_project._get_kwargs(project_id)
        return ProjectObject.from_dict(await _send(self._client, kwargs))


class AsyncDeployments:
    """The organization's private deployments (see `Deployments`), awaited."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        name: str,
        model: str,
        replicas: dict[str, int] | None = None,
        hardware: str | None = None,
        kv_cache_memory: int | None = None,
        max_model_len: int | None = None,
        overflow: Literal["none", "shared"] | None = None,
        idempotency_key: str | None = None,
    ) -> DeploymentObject:
        """Requests a deployment of a served `model` under `name` (see `Deployments.create`)."""
        body = DeploymentCreate(
            name=name,
            model=model,
            replicas=ReplicaRange.from_dict(replicas)
            if replicas is not None
            else UNSET,
            hardware=opt(hardware),
            kv_cache_memory=opt(kv_cache_memory),
            max_model_len=opt(max_model_len),
            overflow=opt(overflow),
        )
        kwargs = create_deployment._get_kwargs(body=body)
        return DeploymentObject.from_dict(
            await _send(self._client, kwargs, idempotency_key=idempotency_key)
        )

    async def list(
        self, *, limit: int | None = None, include_deleted: bool | None = None
    ) -> AsyncPage[DeploymentObject]:
        """The organization's deployments; `async for` over the page walks all of them."""

        async def fetch(after: str | None) -> AsyncPage[DeploymentObject]:
            kwargs = list_deployments._get_kwargs(
                limit=opt(limit),
                after=opt(after),
                include_deleted=opt(include_deleted),
            )
            return AsyncPage(
                DeploymentList.from_dict(await _send(self._client, kwargs)), fetch
            )

        return await fetch(None)

    async def retrieve(self, deployment_id: str) -> DeploymentObject:
        kwargs = get_deployment._get_kwargs(deployment_id)
        return DeploymentObject.from_dict(await _send(self._client, kwargs))

    async def update(
        self, deployment_id: str, *, replicas: dict[str, int]
    ) -> DeploymentObject:
        """Scales a deployment to `replicas` (`{"min": N, "max": M}`)."""
        body = DeploymentUpdate(replicas=ReplicaRange.from_dict(replicas))
        kwargs = update_deployment._get_kwargs(deployment_id, body=body)
        return DeploymentObject.from_dict(await _send(self._client, kwargs))

    async def stop(self, deployment_id: str) -> DeploymentObject:
        """Stops its replicas; its requests get 503 until it is started again."""
        kwargs = stop_deployment._get_kwargs(deployment_id)
        return DeploymentObject.from_dict(await _send(self._client, kwargs))

    async def start(self, deployment_id: str) -> DeploymentObject:
        """Starts a stopped (or failed) deployment again."""
        kwargs = start_deployment._get_kwargs(deployment_id)
        return DeploymentObject.from_dict(await _send(self._client, kwargs))

    async def delete(self, deployment_id: str) -> DeploymentObject:
        """Deletes a deployment: it answers in state `deleting`, then becomes `deleted`."""
        kwargs = delete_deployment._get_kwargs(deployment_id)
        return DeploymentObject.from_dict(await _send(self._client, kwargs))

    async def events(self, deployment_id: str) -> list[DeploymentEventObject]:
        """The deployment's history of states, oldest first."""
        kwargs = list_deployment_events._get_kwargs(deployment_id)
        parsed = DeploymentEventList.from_dict(await _send(self._client, kwargs))
        return list(parsed.data)


class AsyncUsage:
    """Token usage in time buckets; `async for` over a page walks every bucket."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def completions(
        self,
        *,
        start_time: int,
        end_time: int | None = None,
        bucket_width: str | None = None,
        project_ids: list[str] | None = None,
        api_key_ids: list[str] | None = None,
        models: list[str] | None = None,
        group_by: list[str] | None = None,
        limit: int | None = None,
    ) -> AsyncPage[UsageBucketCompletionsUsageResult]:
        async def fetch(
            page: str | None,
        ) -> AsyncPage[UsageBucketCompletionsUsageResult]:
            kwargs = usage_completions._get_kwargs(
                start_time=start_time,
                end_time=opt(end_time),
                bucket_width=opt(bucket_width),
                project_ids=opt(project_ids),
                api_key_ids=opt(api_key_ids),
                models=opt(models),
                group_by=opt(group_by),
                limit=opt(limit),
                page=opt(page),
            )
            parsed = UsagePageCompletionsUsageResult.from_dict(
                await _send(self._client, kwargs)
            )
            return AsyncPage(parsed, fetch)

        return await fetch(None)

    async def embeddings(
        self,
        *,
        start_time: int,
        end_time: int | None = None,
        bucket_width: str | None = None,
        project_ids: list[str] | None = None,
        api_key_ids: list[str] | None = None,
        models: list[str] | None = None,
        group_by: list[str] | None = None,
        limit: int | None = None,
    ) -> AsyncPage[UsageBucketEmbeddingsUsageResult]:
        async def fetch(
            page: str | None,
        ) -> AsyncPage[UsageBucketEmbeddingsUsageResult]:
            kwargs = usage_embeddings._get_kwargs(
                start_time=start_time,
                end_time=opt(end_time),
                bucket_width=opt(bucket_width),
                project_ids=opt(project_ids),
                api_key_ids=opt(api_key_ids),
                models=opt(models),
                group_by=opt(group_by),
                limit=opt(limit),
                page=opt(page),
            )
            parsed = UsagePageEmbeddingsUsageResult.from_dict(
                await _send(self._client, kwargs)
            )
            return AsyncPage(parsed, fetch)

        return await fetch(None)


class AsyncCosts:
    """What the organization spent, per day."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        start_time: int,
        end_time: int | None = None,
        bucket_width: str | None = None,
        project_ids: list[str] | None = None,
        group_by: list[str] | None = None,
        limit: int | None = None,
    ) -> AsyncPage[UsageBucketCostResult]:
        async def fetch(page: str | None) -> AsyncPage[UsageBucketCostResult]:
            kwargs = costs._get_kwargs(
                start_time=start_time,
                end_time=opt(end_time),
                bucket_width=opt(bucket_width),
                project_ids=opt(project_ids),
                group_by=opt(group_by),
                limit=opt(limit),
                page=opt(page),
            )
            parsed = UsagePageCostResult.from_dict(await _send(self._client, kwargs))
            return AsyncPage(parsed, fetch)

        return await fetch(None)


class AsyncCredits:
    """The organization's prepaid credits and ledger."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def retrieve(self) -> CreditsObject:
        return CreditsObject.from_dict(
            await _send(self._client, get_credits._get_kwargs())
        )


class AsyncWsTickets:
    """Single-use tickets for `GET /v1/chat/ws?ticket=`."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def create(self) -> WsTicket:
        return WsTicket.from_dict(
            await _send(self._client, create_ws_ticket._get_kwargs())
        )


class AsyncBilling:
    """The organization's balance, ledger, invoices and the price catalog (micro-USD)."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def balance(self) -> BalanceObject:
        return BalanceObject.from_dict(
            await _send(self._client, get_balance._get_kwargs())
        )

    async def ledger(self, *, limit: int | None = None) -> AsyncPage[LedgerEntryObject]:
        """The ledger's entries, newest first; `async for` walks all of them."""

        async def fetch(after: str | None) -> AsyncPage[LedgerEntryObject]:
            kwargs = list_ledger._get_kwargs(limit=opt(limit), after=opt(after))
            parsed = LedgerEntryList.from_dict(await _send(self._client, kwargs))
            return AsyncPage(parsed, fetch)

        return await fetch(None)

    async def invoices(self, *, limit: int | None = None) -> AsyncPage[InvoiceObject]:
        async def fetch(after: str | None) -> AsyncPage[InvoiceObject]:
            kwargs = list_invoices._get_kwargs(limit=opt(limit), after=opt(after))
            parsed = InvoiceList.from_dict(await _send(self._client, kwargs))
            return AsyncPage(parsed, fetch)

        return await fetch(None)

    async def upcoming_invoice(self, period: str | None = None) -> InvoiceObject:
        """The draft invoice of a month (`YYYY-MM`, UTC; default the current one)."""
        kwargs = upcoming_invoice._get_kwargs(period=opt(period))
        return InvoiceObject.from_dict(await _send(self._client, kwargs))

    async def invoice(self, invoice_id: str) -> InvoiceObject:
        return InvoiceObject.from_dict(
            await _send(self._client, get_invoice._get_kwargs(invoice_id))
        )

    async def prices(self, *, model: str | None = None) -> list[PriceObject]:
        kwargs = list_prices._get_kwargs(model=opt(model))
        return list(PriceList.from_dict(await _send(self._client, kwargs)).data)

    async def create_top_up(
        self,
        *,
        amount_micros: int,
        success_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> TopUpObject:
        """Buy credits through Stripe Checkout (see `Billing.create_top_up`)."""
        body = TopUpCreate(
            amount_micros=amount_micros,
            success_url=opt(success_url),
            cancel_url=opt(cancel_url),
        )
        return TopUpObject.from_dict(
            await _send(
                self._client,
                create_top_up._get_kwargs(body=body),
                idempotency_key=idempotency_key,
            )
        )

    async def top_ups(self, *, limit: int | None = None) -> AsyncPage[TopUpObject]:
        async def fetch(after: str | None) -> AsyncPage[TopUpObject]:
            kwargs = list_top_ups._get_kwargs(limit=opt(limit), after=opt(after))
            parsed = TopUpList.from_dict(await _send(self._client, kwargs))
            return AsyncPage(parsed, fetch)

        return await fetch(None)

    async def top_up(self, top_up_id: str) -> TopUpObject:
        return TopUpObject.from_dict(
            await _send(self._client, get_top_up._get_kwargs(top_up_id))
        )


class AsyncBudgets:
    """Spend caps of the organization, a project or an API key (see `Budgets`)."""

    def __init__(self, client: AsyncBaseClient) -> None:
        self._client = client

    async def _budget(self, kwargs: dict[str, Any]) -> BudgetObject:
        return BudgetObject.from_dict(await _send(self._client, kwargs))

    async def organization(self) -> BudgetObject:
        return await self._budget(get_organization_budget._get_kwargs())

    async def set_organization(self, *, limit_micros: int) -> BudgetObject:
        body = BudgetUpdate(limit_micros=limit_micros)
        return await self._budget(set_organization_budget._get_kwargs(body=body))

    async def clear_organization(self) -> BudgetObject:
        return await self._budget(delete_organization_budget._get_kwargs())

    async def project(self, project_id: str) -> BudgetObject:
        return await self._budget(get_project_budget._get_kwargs(project_id))

    async def set_project(self, project_id: str, *, limit_micros: int) -> BudgetObject:
        body = BudgetUpdate(limit_micros=limit_micros)
        return await self._budget(set_project_budget._get_kwargs(project_id, body=body))

    async def clear_project(self, project_id: str) -> BudgetObject:
        return await self._budget(delete_project_budget._get_kwargs(project_id))

    async def key(self, project_id: str, key_id: str) -> BudgetObject:
        return await self._budget(get_key_budget._get_kwargs(project_id, key_id))

    async def set_key(
        self, project_id: str, key_id: str, *, limit_micros: int
    ) -> BudgetObject:
        body = BudgetUpdate(limit_micros=limit_micros)
        return await self._budget(
            set_key_budget._get_kwargs(project_id, key_id, body=body)
        )

    async def clear_key(self, project_id: str, key_id: str) -> BudgetObject:
        return await self._budget(delete_key_budget._get_kwargs(project_id, key_id))
