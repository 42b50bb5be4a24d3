"""OpenAI's cursor lists (`{"object":"list","data":[...],"first_id","last_id","has_more"}`,
`?limit=&after=`), iterated across pages automatically."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Page(Generic[T]):
    """One page of a list. Iterating a page walks every following page too, fetching them as
    needed; `data` holds only this page."""

    def __init__(self, parsed: Any, fetch: Callable[[str], Page[T]]) -> None:
        self.data: list[T] = list(parsed.data)
        self.has_more: bool = bool(parsed.has_more)
        last_id = getattr(parsed, "last_id", None)
        self.last_id: str | None = last_id if isinstance(last_id, str) else None
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.has_more and self.last_id is not None

    def next_page(self) -> Page[T]:
        if not self.has_next_page():
            raise StopIteration("no more pages")
        assert self.last_id is not None
        return self._fetch(self.last_id)

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
