"""The Python SDK of Starfire's OpenAI-compatible API.

from starfire import Starfire

client = Starfire()  # STARFIRE_API_KEY, STARFIRE_BASE_URL
for chunk in client.chat.completions.create(
    model="smollm2-135m-instruct",
    messages=[{"role": "user", "content": "Hello"}],
    stream=True,
):
    print(chunk.choices[0].delta.content or "", end="")

`AsyncStarfire` is the same client for asyncio; `client.chat.ws()` opens a chat WebSocket.
"""

from __future__ import annotations

import httpx

from ._async_resources import (
    AsyncBilling,
    AsyncBudgets,
    AsyncChat,
    AsyncCosts,
    AsyncCredits,
    AsyncDeployments,
    AsyncModels,
    AsyncProjects,
    AsyncUsage,
    AsyncWsTickets,
)
from ._client import DEFAULT_MAX_RETRIES, AsyncBaseClient, BaseClient
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APIStreamError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StarfireError,
    UnprocessableEntityError,
)
from ._pagination import AsyncPage, Page
from ._resources import (
    Billing,
    Budgets,
    Chat,
    Costs,
    Credits,
    Deployments,
    Models,
    Projects,
    Usage,
    WsTickets,
)
from ._streaming import (
    AsyncStream,
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    ChunkUsage,
    FunctionCall,
    FunctionDelta,
    Stream,
    ToolCall,
    ToolCallAccumulator,
    ToolCallDelta,
)
from ._version import __version__
from ._websocket import (
    AsyncChatSocket,
    AsyncChatSocketStream,
    ChatDeltaFrame,
    ChatDoneFrame,
    ChatSocket,
    ChatSocketStream,
)


class Starfire(BaseClient):
    """A client of one Starfire server.

    `api_key` defaults to `STARFIRE_API_KEY`, `base_url` to `STARFIRE_BASE_URL` (else
    http://127.0.0.1:8080). Failed requests (408, 409, 429, 5xx, connection errors) are retried
    `max_retries` times with exponential backoff and jitter, honouring `Retry-After`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )
        self.chat = Chat(self)
        self.models = Models(self)
        self.projects = Projects(self)
        self.deployments = Deployments(self)
        self.usage = Usage(self)
        self.costs = Costs(self)
        self.credits = Credits(self)
        self.billing = Billing(self)
        self.budgets = Budgets(self)
        self.ws_tickets = WsTickets(self)

    def __enter__(self) -> Starfire:
        return self


class AsyncStarfire(AsyncBaseClient):
    """The asyncio client (httpx.AsyncClient): the same configuration, retries and typed errors
    as `Starfire`, every call awaited. Use it with `async with`, or `await client.close()`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )
        self.chat = AsyncChat(self)
        self.models = AsyncModels(self)
        self.projects = AsyncProjects(self)
        self.deployments = AsyncDeployments(self)
        self.usage = AsyncUsage(self)
        self.costs = AsyncCosts(self)
        self.credits = AsyncCredits(self)
        self.billing = AsyncBilling(self)
        self.budgets = AsyncBudgets(self)
        self.ws_tickets = AsyncWsTickets(self)

    async def __aenter__(self) -> AsyncStarfire:
        return self


__all__ = [
    "Starfire",
    "AsyncStarfire",
    "Page",
    "AsyncPage",
    "Stream",
    "AsyncStream",
    "ChatSocket",
    "ChatSocketStream",
    "AsyncChatSocket",
    "AsyncChatSocketStream",
    "ChatDeltaFrame",
    "ChatDoneFrame",
    "ChunkUsage",
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChoiceDelta",
    "ToolCallDelta",
    "FunctionDelta",
    "ToolCall",
    "FunctionCall",
    "ToolCallAccumulator",
    "__version__",
    "StarfireError",
    "APIError",
    "APIStatusError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStreamError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InsufficientQuotaError",
    "InternalServerError",
]
