"""Typed errors: one class per kind of failure, each carrying the server's request id."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
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


class StarfireError(Exception):
    """Base of every error this SDK raises."""


class APIError(StarfireError):
    """An error that concerns a request to the API."""

    message: str
    request_id: str | None

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        if self.request_id:
            return f"{self.message} (request id {self.request_id})"
        return self.message


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke before an answer."""

    def __init__(
        self, message: str = "Connection error.", *, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's timeout."""

    def __init__(self, message: str = "Request timed out.") -> None:
        super().__init__(message)


class APIStatusError(APIError):
    """The server answered with a 4xx or 5xx status. `code`, `type` and `param` come from
    OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`."""

    status_code: int
    response: httpx.Response
    body: Any
    code: str | None
    type: str | None
    param: str | None

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, request_id=response.headers.get("x-request-id"))
        self.response = response
        self.status_code = response.status_code
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.code = error.get("code")
        self.type = error.get("type")
        self.param = error.get("param")


class BadRequestError(APIStatusError):
    """400: the request was malformed or not acceptable."""


class AuthenticationError(APIStatusError):
    """401: no credential, or an unknown, revoked or expired one."""


class PermissionDeniedError(APIStatusError):
    """403: the credential is valid but not allowed to do this."""


class NotFoundError(APIStatusError):
    """404: no such resource (or model) for this tenant."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state."""


class UnprocessableEntityError(BadRequestError):
    """422: well-formed input whose value is not acceptable."""


class RateLimitError(APIStatusError):
    """429: a rate limit was reached; retried automatically before being raised."""


class InsufficientQuotaError(RateLimitError):
    """429 with code `insufficient_quota`: the budget or credit is spent; retrying does not help."""


class InternalServerError(APIStatusError):
    """5xx: the server failed or is unavailable."""


class APIStreamError(APIError):
    """An error the server sent inside a stream that had already started."""

    code: str | None
    type: str | None

    def __init__(self, error: dict[str, Any], *, request_id: str | None) -> None:
        super().__init__(
            str(error.get("message") or "stream error"), request_id=request_id
        )
        self.code = error.get("code")
        self.type = error.get("type")


def status_error(response: httpx.Response) -> APIStatusError:
    """The typed error for an error response (its body must have been read)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    if not message:
        message = f"HTTP {response.status_code}"
    status = response.status_code
    cls: type[APIStatusError]
    if status == 400:
        cls = BadRequestError
    elif status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status == 422:
        cls = UnprocessableEntityError
    elif status == 429:
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        cls = InsufficientQuotaError if code == "insufficient_quota" else RateLimitError
    elif status >= 500:
        cls = InternalServerError
    else:
        cls = APIStatusError
    return cls(message, response=response, body=body)
