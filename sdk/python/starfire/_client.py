"""The hand-written core: configuration, the retry loop and typed errors. Paths, bodies and
response models come from the generated package (`starfire._generated`)."""

from __future__ import annotations

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


class BaseClient:
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
        self._http = http_client or httpx.Client(timeout=timeout)
        self._owns_http = http_client is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": f"starfire-python/{__version__}",
            "Accept": "application/json",
        }
        if extra:
            headers.update(extra)
        return headers

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
        method = method.upper()
        all_headers = self._headers(headers)
        if method == "POST":
            all_headers.setdefault(
                "Idempotency-Key", idempotency_key or f"sf-py-{uuid.uuid4().hex}"
            )
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        retries = self.max_retries if max_retries is None else max_retries
        request = self._http.build_request(
            method,
            self.base_url + url,
            json=json,
            params=params,
            headers=all_headers,
            timeout=timeout if timeout is not None else self.timeout,
        )
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if attempt < retries:
                    time.sleep(backoff_delay(attempt, None) or 0)
                    attempt += 1
                    continue
                raise _errors.APITimeoutError() from exc
            except httpx.TransportError as exc:
                if attempt < retries:
                    time.sleep(backoff_delay(attempt, None) or 0)
                    attempt += 1
                    continue
                raise _errors.APIConnectionError(f"Connection error: {exc}") from exc

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
            if attempt < retries and _should_retry(response):
                delay = backoff_delay(attempt, response)
                if delay is not None:
                    time.sleep(delay)
                    attempt += 1
                    continue
            raise _errors.status_error(response)
