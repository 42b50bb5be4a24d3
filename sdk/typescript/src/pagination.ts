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
export class Page<T> implements AsyncIterable<T> {
  readonly data: T[];
  readonly hasMore: boolean;
  /** The cursor of the next page (`last_id` or `next_page`). */
  readonly cursor: string | null;
  private readonly fetchPage: (cursor: string) => Promise<Page<T>>;

  constructor(list: CursorList<T>, fetchPage: (cursor: string) => Promise<Page<T>>) {
    this.data = list.data;
    this.hasMore = list.has_more;
    this.cursor = list.next_page ?? list.last_id ?? null;
    this.fetchPage = fetchPage;
  }

  hasNextPage(): boolean {
    return this.hasMore && this.cursor !== null;
  }

  async nextPage(): Promise<Page<T>> {
    if (!this.hasNextPage() || this.cursor === null) throw new Error("no more pages");
    return this.fetchPage(this.cursor);
  }

  async *iterPages(): AsyncGenerator<Page<T>> {
    let page: Page<T> = this;
    for (;;) {
      yield page;
      if (!page.hasNextPage()) return;
      page = await page.nextPage();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for await (const page of this.iterPages()) yield* page.data;
  }
}

/** A page still on its way: `await` it for the first page, or `for await` over it to walk every
 * item of every page. */
export class PagePromise<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
  private readonly first: Promise<Page<T>>;

  constructor(fetchPage: (cursor: string | null) => Promise<Page<T>>) {
    this.first = fetchPage(null);
    // Not awaited yet is not unhandled: the error reaches whoever awaits or iterates.
    this.first.catch(() => undefined);
  }

  then<A = Page<T>, B = never>(
    onfulfilled?: ((value: Page<T>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.first.then(onfulfilled, onrejected);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    yield* await this.first;
  }
}

/** A list walked by `cursor` (`after` or `page`), `null` for the first page. */
export function paginate<T>(
  fetchList: (cursor: string | null) => Promise<CursorList<T>>,
): PagePromise<T> {
  const fetchPage = async (cursor: string | null): Promise<Page<T>> =>
    new Page(await fetchList(cursor), (next) => fetchPage(next));
  return new PagePromise(fetchPage);
}
