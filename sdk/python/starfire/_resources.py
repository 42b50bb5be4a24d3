"""Resources: `client.chat.completions`, `client.chat.ws()`, `client.models`, `client.projects`,
`client.projects.api_keys`, `client.deployments`, `client.usage`, `client.costs`,
`client.credits`, `client.billing`, `client.budgets` and `client.ws_tickets`. Each call takes its method and path from the generated operation
and parses the answer into the generated model, so a change to the spec shows up here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

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
from ._pagination import Page
from ._streaming import ChatCompletionChunk, Stream
from ._websocket import ChatSocket

if TYPE_CHECKING:
    from ._client import BaseClient

_CHAT_FIELDS = frozenset(f.name for f in attrs.fields(ChatCompletionRequest)) - {
    "additional_properties"
}


def opt(value: Any) -> Any:
    """None (left out by the caller) as the generated code's UNSET."""
    return UNSET if value is None else value


def _send(client: BaseClient, kwargs: dict[str, Any], **options: Any):
    return client.request(
        kwargs["method"],
        kwargs["url"],
        json=kwargs.get("json"),
        params=kwargs.get("params"),
        **options,
    )


class ChatCompletions:
    def __init__(self, client: BaseClient) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: Literal[True],
        **params: Any,
    ) -> Stream[ChatCompletionChunk]: ...

    def create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: bool = False,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """Creates a chat completion. With `stream=True`, returns an iterator of
        `ChatCompletionChunk` (close it, or use `with`, to stop early)."""
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
        response = self._client.request(
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
            return Stream(response, ChatCompletionChunk.from_dict)
        return ChatCompletion.from_dict(response.json())


class Chat:
    def __init__(self, client: BaseClient) -> None:
        self._client = client
        self.completions = ChatCompletions(client)

    def ws(self, *, use_ticket: bool = False) -> ChatSocket:
        """Opens a chat WebSocket (`GET /v1/chat/ws`); use it with `with`. With `use_ticket`,
        it authenticates with a single-use ticket in the URL instead of the key header."""
        return ChatSocket.connect(self._client, use_ticket=use_ticket)


class Models:
    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def list(self) -> list[ModelObject]:
        response = _send(self._client, list_models._get_kwargs())
        return list(ModelList.from_dict(response.json()).data)

    def retrieve(self, model: str) -> ModelObject:
        response = _send(self._client, retrieve_model._get_kwargs(model))
        return ModelObject.from_dict(response.json())


class ApiKeys:
    """A project's API keys."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def create(
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
            expires_at=expires_at if expires_at is not None else UNSET,
        )
        response = _send(
            self._client,
            create_project_key._get_kwargs(project_id, body=body),
            idempotency_key=idempotency_key,
        )
        return CreatedApiKey.from_dict(response.json())

    def list(self, project_id: str, *, limit: int | None = None) -> Page[ApiKeyObject]:
        """The project's live keys; iterate the page to walk all of them."""

        def fetch(after: str | None) -> Page[ApiKeyObject]:
            kwargs = list_project_keys._get_kwargs(
                project_id,
                limit=limit if limit is not None else UNSET,
                after=after if after is not None else UNSET,
            )
            parsed = ApiKeyList.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)

    def retrieve(self, project_id: str, key_id: str) -> ApiKeyObject:
        response = _send(self._client, get_project_key._get_kwargs(project_id, key_id))
        return ApiKeyObject.from_dict(response.json())

    def update(
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
        return ApiKeyObject.from_dict(_send(self._client, kwargs).json())

    def delete(self, project_id: str, key_id: str) -> DeletedObject:
        """Revokes a key: it stops working at once."""
        response = _send(
            self._client, delete_project_key._get_kwargs(project_id, key_id)
        )
        return DeletedObject.from_dict(response.json())


class Projects:
    def __init__(self, client: BaseClient) -> None:
        self._client = client
        self.api_keys = ApiKeys(client)

    def create(self, *, name: str, idempotency_key: str | None = None) -> ProjectObject:
        response = _send(
            self._client,
            create_project._get_kwargs(body=ProjectCreate(name=name)),
            idempotency_key=idempotency_key,
        )
        return ProjectObject.from_dict(response.json())

    def list(
        self, *, limit: int | None = None, include_archived: bool | None = None
    ) -> Page[ProjectObject]:
        """The organization's projects; iterate the page to walk all of them."""

        def fetch(after: str | None) -> Page[ProjectObject]:
            kwargs = list_projects._get_kwargs(
                limit=limit if limit is not None else UNSET,
                after=after if after is not None else UNSET,
                include_archived=include_archived
                if include_archived is not None
                else UNSET,
            )
            parsed = ProjectList.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)

    def retrieve(self, project_id: str) -> ProjectObject:
        response = _send(self._client, get_project._get_kwargs(project_id))
        return ProjectObject.from_dict(response.json())

    def update(self, project_id: str, *, name: str) -> ProjectObject:
        kwargs = modify_project._get_kwargs(project_id, body=ProjectUpdate(name=name))
        return ProjectObject.from_dict(_send(self._client, kwargs).json())

    def archive(self, project_id: str) -> ProjectObject:
        response = _send(self._client, archive_project._get_kwargs(project_id))
        return ProjectObject.from_dict(response.json())


class Deployments:
    """The organization's private deployments: replicas of a model that only its requests reach
    (a request puts the deployment's `name` in `model`). A new deployment waits for a platform
    operator's approval (`state` `requested`) unless the installation approves automatically.
    `replicas` is `{"min": N, "max": M}`."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def create(
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
        """Requests a deployment of a served `model` under `name`. Left out, the server's
        defaults apply: one replica, `cpu`, the installation's KV cache, the model's context
        length, `overflow="none"` (`"shared"` lets the shared pool answer while no replica is
        ready)."""
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
        response = _send(
            self._client,
            create_deployment._get_kwargs(body=body),
            idempotency_key=idempotency_key,
        )
        return DeploymentObject.from_dict(response.json())

    def list(
        self, *, limit: int | None = None, include_deleted: bool | None = None
    ) -> Page[DeploymentObject]:
        """The organization's deployments; iterate the page to walk all of them."""

        def fetch(after: str | None) -> Page[DeploymentObject]:
            kwargs = list_deployments._get_kwargs(
                limit=opt(limit),
                after=opt(after),
                include_deleted=opt(include_deleted),
            )
            parsed = DeploymentList.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)

    def retrieve(self, deployment_id: str) -> DeploymentObject:
        response = _send(self._client, get_deployment._get_kwargs(deployment_id))
        return DeploymentObject.from_dict(response.json())

    def update(
        self, deployment_id: str, *, replicas: dict[str, int]
    ) -> DeploymentObject:
        """Scales a deployment to `replicas` (`{"min": N, "max": M}`); a serving one goes to
        `scaling` until the new count is ready."""
        body = DeploymentUpdate(replicas=ReplicaRange.from_dict(replicas))
        kwargs = update_deployment._get_kwargs(deployment_id, body=body)
        return DeploymentObject.from_dict(_send(self._client, kwargs).json())

    def stop(self, deployment_id: str) -> DeploymentObject:
        """Stops its replicas (reserved capacity is no longer charged); its requests get 503
        `deployment_not_ready` until it is started again."""
        response = _send(self._client, stop_deployment._get_kwargs(deployment_id))
        return DeploymentObject.from_dict(response.json())

    def start(self, deployment_id: str) -> DeploymentObject:
        """Starts a stopped (or failed) deployment again."""
        response = _send(self._client, start_deployment._get_kwargs(deployment_id))
        return DeploymentObject.from_dict(response.json())

    def delete(self, deployment_id: str) -> DeploymentObject:
        """Deletes a deployment: it answers in state `deleting`, then becomes `deleted` (its
        name is free again; its history and charges stay)."""
        response = _send(self._client, delete_deployment._get_kwargs(deployment_id))
        return DeploymentObject.from_dict(response.json())

    def events(self, deployment_id: str) -> list[DeploymentEventObject]:
        """The deployment's history of states, oldest first."""
        kwargs = list_deployment_events._get_kwargs(deployment_id)
        parsed = DeploymentEventList.from_dict(_send(self._client, kwargs).json())
        return list(parsed.data)


class Usage:
    """Token usage in time buckets; iterate a page to walk every bucket."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def completions(
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
    ) -> Page[UsageBucketCompletionsUsageResult]:
        def fetch(page: str | None) -> Page[UsageBucketCompletionsUsageResult]:
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
                _send(self._client, kwargs).json()
            )
            return Page(parsed, fetch)

        return fetch(None)

    def embeddings(
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
    ) -> Page[UsageBucketEmbeddingsUsageResult]:
        def fetch(page: str | None) -> Page[UsageBucketEmbeddingsUsageResult]:
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
                _send(self._client, kwargs).json()
            )
            return Page(parsed, fetch)

        return fetch(None)


class Costs:
    """What the organization spent, per day."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def list(
        self,
        *,
        start_time: int,
        end_time: int | None = None,
        bucket_width: str | None = None,
        project_ids: list[str] | None = None,
        group_by: list[str] | None = None,
        limit: int | None = None,
    ) -> Page[UsageBucketCostResult]:
        def fetch(page: str | None) -> Page[UsageBucketCostResult]:
            kwargs = costs._get_kwargs(
                start_time=start_time,
                end_time=opt(end_time),
                bucket_width=opt(bucket_width),
                project_ids=opt(project_ids),
                group_by=opt(group_by),
                limit=opt(limit),
                page=opt(page),
            )
            parsed = UsagePageCostResult.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)


class Credits:
    """The organization's prepaid credits and ledger."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def retrieve(self) -> CreditsObject:
        response = _send(self._client, get_credits._get_kwargs())
        return CreditsObject.from_dict(response.json())


class WsTickets:
    """Single-use tickets for `GET /v1/chat/ws?ticket=` (for clients that cannot set headers)."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def create(self) -> WsTicket:
        return WsTicket.from_dict(
            _send(self._client, create_ws_ticket._get_kwargs()).json()
        )


class Billing:
    """The organization's balance, ledger, invoices and the price catalog (amounts in
    micro-USD: 1 USD = 1,000,000)."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def balance(self) -> BalanceObject:
        """The prepaid balance: what the ledger holds, what is reserved, what is available."""
        response = _send(self._client, get_balance._get_kwargs())
        return BalanceObject.from_dict(response.json())

    def ledger(self, *, limit: int | None = None) -> Page[LedgerEntryObject]:
        """The ledger's entries, newest first; iterate the page to walk all of them."""

        def fetch(after: str | None) -> Page[LedgerEntryObject]:
            kwargs = list_ledger._get_kwargs(limit=opt(limit), after=opt(after))
            parsed = LedgerEntryList.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)

    def invoices(self, *, limit: int | None = None) -> Page[InvoiceObject]:
        """The finalized invoices; iterate the page to walk all of them."""

        def fetch(after: str | None) -> Page[InvoiceObject]:
            kwargs = list_invoices._get_kwargs(limit=opt(limit), after=opt(after))
            parsed = InvoiceList.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)

    def upcoming_invoice(self, period: str | None = None) -> InvoiceObject:
        """The draft invoice of a month (`YYYY-MM`, UTC; default the current one)."""
        kwargs = upcoming_invoice._get_kwargs(period=opt(period))
        return InvoiceObject.from_dict(_send(self._client, kwargs).json())

    def invoice(self, invoice_id: str) -> InvoiceObject:
        response = _send(self._client, get_invoice._get_kwargs(invoice_id))
        return InvoiceObject.from_dict(response.json())

    def prices(self, *, model: str | None = None) -> list[PriceObject]:
        """The price catalog (optionally one model's prices)."""
        kwargs = list_prices._get_kwargs(model=opt(model))
        return list(PriceList.from_dict(_send(self._client, kwargs).json()).data)

    def create_top_up(
        self,
        *,
        amount_micros: int,
        success_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> TopUpObject:
        """Buy credits: opens a Stripe Checkout Session (pay at `checkout_url`); the credits
        are added when Stripe reports the payment. Retries keep one idempotency key."""
        body = TopUpCreate(
            amount_micros=amount_micros,
            success_url=opt(success_url),
            cancel_url=opt(cancel_url),
        )
        response = _send(
            self._client,
            create_top_up._get_kwargs(body=body),
            idempotency_key=idempotency_key,
        )
        return TopUpObject.from_dict(response.json())

    def top_ups(self, *, limit: int | None = None) -> Page[TopUpObject]:
        """The organization's top-ups, newest first; iterate the page to walk all of them."""

        def fetch(after: str | None) -> Page[TopUpObject]:
            kwargs = list_top_ups._get_kwargs(limit=opt(limit), after=opt(after))
            parsed = TopUpList.from_dict(_send(self._client, kwargs).json())
            return Page(parsed, fetch)

        return fetch(None)

    def top_up(self, top_up_id: str) -> TopUpObject:
        response = _send(self._client, get_top_up._get_kwargs(top_up_id))
        return TopUpObject.from_dict(response.json())


class Budgets:
    """Spend caps of the organization, a project or an API key. `set_*` sets or replaces the
    cap (`limit_micros`, micro-USD); `clear_*` removes it; each answers the budget."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def _budget(self, kwargs: dict[str, Any]) -> BudgetObject:
        return BudgetObject.from_dict(_send(self._client, kwargs).json())

    def organization(self) -> BudgetObject:
        return self._budget(get_organization_budget._get_kwargs())

    def set_organization(self, *, limit_micros: int) -> BudgetObject:
        body = BudgetUpdate(limit_micros=limit_micros)
        return self._budget(set_organization_budget._get_kwargs(body=body))

    def clear_organization(self) -> BudgetObject:
        return self._budget(delete_organization_budget._get_kwargs())

    def project(self, project_id: str) -> BudgetObject:
        return self._budget(get_project_budget._get_kwargs(project_id))

    def set_project(self, project_id: str, *, limit_micros: int) -> BudgetObject:
        body = BudgetUpdate(limit_micros=limit_micros)
        return self._budget(set_project_budget._get_kwargs(project_id, body=body))

    def clear_project(self, project_id: str) -> BudgetObject:
        return self._budget(delete_project_budget._get_kwargs(project_id))

    def key(self, project_id: str, key_id: str) -> BudgetObject:
        return self._budget(get_key_budget._get_kwargs(project_id, key_id))

    def set_key(
        self, project_id: str, key_id: str, *, limit_micros: int
    ) -> BudgetObject:
        body = BudgetUpdate(limit_micros=limit_micros)
        return self._budget(set_key_budget._get_kwargs(project_id, key_id, body=body))

    def clear_key(self, project_id: str, key_id: str) -> BudgetObject:
        return self._budget(delete_key_budget._get_kwargs(project_id, key_id))
