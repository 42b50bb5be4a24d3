"""The hand-written core: configuration, the retry loop and typed errors. Paths, bodies and
response models come from the generated package (`starfire._generated`)."""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
import uuid
from typing import Any

import httpx

from . import _errors
from ._version import __version__

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
RETRYABLE_STATUSES = frozenset({408, 409, 429})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
# A `Retry-After` beyond this is not waited for: the error is raised instead.
MAX_RETRY_AFTER = 60.0


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or an HTTP date), when present and sane."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - time.time()
    return max(seconds, 0.0)


def backoff_delay(attempt: int, response: httpx.Response | None) -> float | None:
    """The wait before retry number `attempt` (0-based): the server's `Retry-After` when it gives
    one (None when it asks for longer than we wait), else exponential backoff with jitter."""
    if response is not None:
        after = _retry_after(response)
        if after is not None:
            return after if after <= MAX_RETRY_AFTER else None
    delay = min(INITIAL_RETRY_DELAY * (2**attempt), MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def _should_retry(response: httpx.Response) -> bool:
    if response.status_code == 429:
        # A spent quota does not come back by waiting.
        try:
            body = response.json()
            if body.get("error", {}).get("code") == "insufficient_quota":
                return False
        except (ValueError, AttributeError):
            pass
        return True
    return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500


class _ClientConfig:
    """What the sync and async clients share: the key, base URL, timeout and retry policy, and
    how a request is built."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get("STARFIRE_API_KEY")
        if not api_key:
            raise _errors.StarfireError(
                "No API key: pass api_key=... or set the STARFIRE_API_KEY environment variable."
            )
        self.api_key = api_key
        base_url = base_url or os.environ.get("STARFIRE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base_url.rstrip("/")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.max_retries = max_retries
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        elif not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        self.timeout = timeout

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": f"starfire-python/{__version__}",
            "Accept": "application/json",
        }
        if extra:
            headers.update(extra)
        return headers

    def _build(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        url: str,
        *,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        idempotency_key: str | None,
        timeout: float | httpx.Timeout | None,
    ) -> httpx.Request:
        """The request every attempt sends: a POST carries one `Idempotency-Key` for all."""
        method = method.upper()
        all_headers = self._headers(headers)
        if method == "POST":
            all_headers.setdefault(
                "Idempotency-Key", idempotency_key or f"sf-py-{uuid.uuid4().hex}"
            )
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        return http.build_request(
            method,
            self.base_url + url,
            json=json,
            params=params,
            headers=all_headers,
            timeout=timeout if timeout is not None else self.timeout,
        )


def _transport_error(exc: httpx.TransportError) -> _errors.APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return _errors.APITimeoutError()
    return _errors.APIConnectionError(f"Connection error: {exc}")


def _retry_delay(attempt: int, retries: int, response: httpx.Response) -> float | None:
    """The wait before retrying an error answer, or None to raise it now."""
    if attempt < retries and _should_retry(response):
        return backoff_delay(attempt, response)
    return None


class BaseClient(_ClientConfig):
    """Sends requests with retries and turns error answers into typed errors."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        http_client: httpx.Client | None,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._http = http_client or httpx.Client(timeout=self.timeout)
        self._owns_http = http_client is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        idempotency_key: str | None = None,
        max_retries: int | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Sends one logical request, retrying 408/409/429/5xx and connection failures with
        backoff. A POST carries one `Idempotency-Key` across all its attempts. With `stream`
        the successful response is returned unread (the caller must close it); a retry only
        ever happens before any of the body has been handed to the caller."""
        request = self._build(
            self._http,
            method,
            url,
            json=json,
            params=params,
            headers=headers,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )
        retries = self.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt < retries:
                    time.sleep(backoff_delay(attempt, None) or 0)
                    attempt += 1
                    continue
                raise _transport_error(exc) from exc

            if response.is_success:
                if not stream:
                    try:
                        response.read()
                    finally:
                        response.close()
                return response

            # An error answer: read it (it is small) and decide.
            try:
                response.read()
            finally:
                response.close()
            delay = _retry_delay(attempt, retries, response)
            if delay is None:
                raise _errors.status_error(response)
            time.sleep(delay)
            attempt += 1


class AsyncBaseClient(_ClientConfig):
    """The asyncio twin of `BaseClient` (httpx.AsyncClient), with the same retries and errors."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout)
        self._owns_http = http_client is None

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncBaseClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        idempotency_key: str | None = None,
        max_retries: int | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """See `BaseClient.request`."""
        request = self._build(
            self._http,
            method,
            url,
            json=json,
            params=params,
            headers=headers,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )
        retries = self.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt < retries:
                    await asyncio.sleep(backoff_delay(attempt, None) or 0)
                    attempt += 1
                    continue
                raise _transport_error(exc) from exc

            if response.is_success:
                if not stream:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                return response

            try:
                await response.aread()
            finally:
                await response.aclose()
            delay = _retry_delay(attempt, retries, response)
            if delay is None:
                raise _errors.status_error(response)
            await asyncio.sleep(delay)
            attempt += 1
