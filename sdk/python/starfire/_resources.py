"""Resources: `client.chat.completions`, `client.models`, `client.projects` and
`client.projects.api_keys`. Each call takes its method and path from the generated operation
and parses the answer into the generated model, so a change to the spec shows up here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

from ._generated.api.api_keys import (
    create_project_key,
    delete_project_key,
    get_project_key,
    list_project_keys,
)
from ._generated.api.inference import (
    create_chat_completion,
    list_models,
    retrieve_model,
)
from ._generated.api.projects import (
    archive_project,
    create_project,
    get_project,
    list_projects,
    modify_project,
)
from ._generated.models import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyObject,
    ChatCompletion,
    ChatCompletionRequest,
    CreatedApiKey,
    DeletedObject,
    ModelList,
    ModelObject,
    ProjectCreate,
    ProjectList,
    ProjectObject,
    ProjectUpdate,
    Scope,
)
from ._generated.types import UNSET
from ._pagination import Page
from ._streaming import ChatCompletionChunk, Stream

if TYPE_CHECKING:
    from ._client import BaseClient

_CHAT_FIELDS = frozenset(f.name for f in attrs.fields(ChatCompletionRequest)) - {
    "additional_properties"
}


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
        self.completions = ChatCompletions(client)


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
        idempotency_key: str | None = None,
    ) -> CreatedApiKey:
        """Creates a key; `value` of the answer is the only time the secret is shown."""
        body = ApiKeyCreate(
            name=name,
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
