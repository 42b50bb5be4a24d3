"""Lists, iterated across pages automatically: OpenAI's cursor lists
(`{"object":"list","data":[...],"last_id","has_more"}`, `?limit=&after=`) and the usage pages
(`{"data":[...],"has_more","next_page"}`, `?page=`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _cursor(parsed: Any) -> str | None:
    """The next page's cursor: `next_page` of a usage page, else `last_id` of a list."""
    for name in ("next_page", "last_id"):
        value = getattr(parsed, name, None)
        if isinstance(value, str):
            return value
    return None


class Page(Generic[T]):
    """One page of a list. Iterating a page walks every following page too, fetching them as
    needed; `data` holds only this page."""

    def __init__(self, parsed: Any, fetch: Callable[[str], Page[T]]) -> None:
        self.data: list[T] = list(parsed.data)
        self.has_more: bool = bool(parsed.has_more)
        self.cursor: str | None = _cursor(parsed)
        self._fetch = fetch

    @property
    def last_id(self) -> str | None:
        return self.cursor

    def has_next_page(self) -> bool:
        return self.has_more and self.cursor is not None

    def next_page(self) -> Page[T]:
        if not self.has_next_page():
            raise StopIteration("no more pages")
        assert self.cursor is not None
        return self._fetch(self.cursor)

    def iter_pages(self) -> Iterator[Page[T]]:
        page: Page[T] = self
        while True:
            yield page
            if not page.has_next_page():
                return
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data


class AsyncPage(Generic[T]):
    """The asyncio twin of `Page`: `async for` walks every following page too."""

    def __init__(
        self, parsed: Any, fetch: Callable[[str], Awaitable[AsyncPage[T]]]
    ) -> None:
        self.data: list[T] = list(parsed.data)
        self.has_more: bool = bool(parsed.has_more)
        self.cursor: str | None = _cursor(parsed)
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.has_more and self.cursor is not None

    async def next_page(self) -> AsyncPage[T]:
        if not self.has_next_page() or self.cursor is None:
            raise StopAsyncIteration("no more pages")
        return await self._fetch(self.cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[T]]:
        page: AsyncPage[T] = self
        while True:
            yield page
            if not page.has_next_page():
                return
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item
