/** Server-sent events and the typed chunks of a streamed chat completion. */
import type { components } from "./generated/openapi.js";
/** What a chunk adds to a choice: the role (first chunk only) and a piece of content. */
export type ChoiceDelta = components["schemas"]["ChatDelta"];
/** One choice's piece of a chunk. */
export type ChunkChoice = components["schemas"]["ChatChunkChoice"];
/** One `chat.completion.chunk` event (the spec's `ChatCompletionChunk`); `usage` only with
 * `stream_options: {include_usage: true}`, on the last chunk. */
export type ChatCompletionChunk = components["schemas"]["ChatCompletionChunk"];
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
/** A piece of a streamed tool call (`delta.tool_calls[]`). */
export type ToolCallDelta = components["schemas"]["ToolCallDelta"];
/** A whole tool call, as a chat completion carries it. */
export type ToolCall = components["schemas"]["ToolCallObject"];
/**
 * Assembles the tool calls of one streamed choice from its deltas: the first piece of each call
 * has its `id`, `type` and `function.name`, the next ones more of `function.arguments`.
 *
 * ```ts
 * const calls = new ToolCallAccumulator();
 * for await (const chunk of stream) if (chunk.choices[0]) calls.add(chunk.choices[0].delta);
 * calls.calls; // [{ id, type: "function", function: { name, arguments } }]
 * ```
 */
export declare class ToolCallAccumulator {
    readonly calls: ToolCall[];
    add(delta: ChoiceDelta): void;
}
