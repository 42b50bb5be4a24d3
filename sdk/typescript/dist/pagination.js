/**
 * Lists, walked across pages automatically: OpenAI's cursor lists
 * (`{"data", "has_more", "last_id"}`, `?after=`) and the usage pages (`{"data", "has_more",
 * "next_page"}`, `?page=`).
 */
/** One page of a list. Iterating it (`for await`) walks every following page too, fetching
 * them as needed; `data` holds only this page. */
export class Page {
    data;
    hasMore;
    /** The cursor of the next page (`last_id` or `next_page`). */
    cursor;
    fetchPage;
    constructor(list, fetchPage) {
        this.data = list.data;
        this.hasMore = list.has_more;
        this.cursor = list.next_page ?? list.last_id ?? null;
        this.fetchPage = fetchPage;
    }
    hasNextPage() {
        return this.hasMore && this.cursor !== null;
    }
    async nextPage() {
        if (!this.hasNextPage() || this.cursor === null)
            throw new Error("no more pages");
        return this.fetchPage(this.cursor);
    }
    async *iterPages() {
        let page = this;
        for (;;) {
            yield page;
            if (!page.hasNextPage())
                return;
            page = await page.nextPage();
        }
    }
    async *[Symbol.asyncIterator]() {
        for await (const page of this.iterPages())
            yield* page.data;
    }
}
/** A page still on its way: `await` it for the first page, or `for await` over it to walk every
 * item of every page. */
export class PagePromise {
    first;
    constructor(fetchPage) {
        this.first = fetchPage(null);
        // Not awaited yet is not unhandled: the error reaches whoever awaits or iterates.
        this.first.catch(() => undefined);
    }
    then(onfulfilled, onrejected) {
        return this.first.then(onfulfilled, onrejected);
    }
    async *[Symbol.asyncIterator]() {
        yield* await this.first;
    }
}
/** A list walked by `cursor` (`after` or `page`), `null` for the first page. */
export function paginate(fetchList) {
    const fetchPage = async (cursor) => new Page(await fetchList(cursor), (next) => fetchPage(next));
    return new PagePromise(fetchPage);
}
