/**
 * Lists, walked across pages automatically: OpenAI's cursor lists
 * (`{"data", "has_more", "last_id"}`, `?after=`) and the usage pages (`{"data", "has_more",
 * "next_page"}`, `?page=`).
 */
interface CursorList<T> {
    data: T[];
    has_more: boolean;
    last_id?: string | null;
    next_page?: string | null;
}
/** One page of a list. Iterating it (`for await`) walks every following page too, fetching
 * them as needed; `data` holds only this page. */
export declare class Page<T> implements AsyncIterable<T> {
    readonly data: T[];
    readonly hasMore: boolean;
    /** The cursor of the next page (`last_id` or `next_page`). */
    readonly cursor: string | null;
    private readonly fetchPage;
    constructor(list: CursorList<T>, fetchPage: (cursor: string) => Promise<Page<T>>);
    hasNextPage(): boolean;
    nextPage(): Promise<Page<T>>;
    iterPages(): AsyncGenerator<Page<T>>;
    [Symbol.asyncIterator](): AsyncIterator<T>;
}
/** A page still on its way: `await` it for the first page, or `for await` over it to walk every
 * item of every page. */
export declare class PagePromise<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
    private readonly first;
    constructor(fetchPage: (cursor: string | null) => Promise<Page<T>>);
    then<A = Page<T>, B = never>(onfulfilled?: ((value: Page<T>) => A | PromiseLike<A>) | null, onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B>;
    [Symbol.asyncIterator](): AsyncIterator<T>;
}
/** A list walked by `cursor` (`after` or `page`), `null` for the first page. */
export declare function paginate<T>(fetchList: (cursor: string | null) => Promise<CursorList<T>>): PagePromise<T>;
export {};
