/** Server-sent events and the typed chunks of a streamed chat completion. */
import type { components } from "./generated/openapi.js";
/** What a chunk adds to a choice: the role (first chunk only) and a piece of content. */
export interface ChoiceDelta {
    role?: "assistant" | null;
    content?: string | null;
    refusal?: string | null;
}
export interface ChunkChoice {
    index: number;
    delta: ChoiceDelta;
    finish_reason: string | null;
    logprobs?: components["schemas"]["ChoiceLogprobs"] | null;
}
/** One `chat.completion.chunk` event. */
export interface ChatCompletionChunk {
    id: string;
    object: "chat.completion.chunk";
    created: number;
    model: string;
    system_fingerprint?: string | null;
    choices: ChunkChoice[];
    /** Only on the last chunk, with `stream_options: {include_usage: true}`. */
    usage?: components["schemas"]["UsageObject"] | null;
}
/** The `data` of each event of a server-sent-event stream (multi-line data joined by newlines;
 * comments, `event:`, `id:` and `retry:` fields ignored). */
export declare function sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string>;
/**
 * An async iterator of typed chunks over an open answer. Leaving the loop early (`break`) or
 * calling `abort()` closes the connection, which stops the generation. Never retried once it
 * has started.
 */
export declare class Stream<T> implements AsyncIterable<T> {
    readonly response: Response;
    readonly requestId: string | null;
    private readonly controller;
    private used;
    constructor(response: Response, controller: AbortController);
    [Symbol.asyncIterator](): AsyncIterator<T>;
    /** Stops the stream (and the generation on the server). */
    abort(): void;
}
