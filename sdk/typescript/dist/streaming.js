/** Server-sent events and the typed chunks of a streamed chat completion. */
import { APIConnectionError, APIStreamError } from "./errors.js";
/** The `data` of each event of a server-sent-event stream (multi-line data joined by newlines;
 * comments, `event:`, `id:` and `retry:` fields ignored). */
export async function* sseData(body) {
    const decoder = new TextDecoder();
    let buffer = "";
    let data = [];
    function* lines(final) {
        for (;;) {
            const end = buffer.search(/\r\n|\r|\n/);
            if (end < 0 || (end === buffer.length - 1 && buffer[end] === "\r" && !final))
                break;
            const line = buffer.slice(0, end);
            buffer = buffer.slice(buffer.startsWith("\r\n", end) ? end + 2 : end + 1);
            yield line;
        }
        if (final && buffer) {
            yield buffer;
            buffer = "";
        }
    }
    function* events(final) {
        for (const line of lines(final)) {
            if (line === "") {
                if (data.length)
                    yield data.join("\n");
                data = [];
            }
            else if (!line.startsWith(":")) {
                const colon = line.indexOf(":");
                const name = colon < 0 ? line : line.slice(0, colon);
                let value = colon < 0 ? "" : line.slice(colon + 1);
                if (value.startsWith(" "))
                    value = value.slice(1);
                if (name === "data")
                    data.push(value);
            }
        }
        if (final && data.length) {
            yield data.join("\n");
            data = [];
        }
    }
    const reader = body.getReader();
    try {
        for (;;) {
            const { done, value } = await reader.read();
            if (done)
                break;
            buffer += decoder.decode(value, { stream: true });
            yield* events(false);
        }
        buffer += decoder.decode();
        yield* events(true);
    }
    finally {
        // Stopping early (break, return, an error) cancels the body: the server stops generating.
        await reader.cancel().catch(() => undefined);
    }
}
/**
 * An async iterator of typed chunks over an open answer. Leaving the loop early (`break`) or
 * calling `abort()` closes the connection, which stops the generation. Never retried once it
 * has started.
 */
export class Stream {
    response;
    requestId;
    controller;
    used = false;
    constructor(response, controller) {
        this.response = response;
        this.requestId = response.headers.get("x-request-id");
        this.controller = controller;
    }
    async *[Symbol.asyncIterator]() {
        if (this.used)
            throw new Error("A stream can be iterated only once.");
        this.used = true;
        if (!this.response.body)
            return;
        try {
            for await (const data of sseData(this.response.body)) {
                if (data === "[DONE]")
                    return;
                const payload = JSON.parse(data);
                if (payload && typeof payload === "object" && "error" in payload) {
                    throw new APIStreamError(payload.error ?? {}, this.requestId);
                }
                yield payload;
            }
        }
        catch (error) {
            if (error instanceof APIStreamError || error instanceof SyntaxError)
                throw error;
            if (this.controller.signal.aborted)
                return;
            throw new APIConnectionError(`The stream broke: ${String(error)}`, this.requestId, { cause: error });
        }
    }
    /** Stops the stream (and the generation on the server). */
    abort() {
        this.controller.abort();
    }
}
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
export class ToolCallAccumulator {
    calls = [];
    add(delta) {
        for (const piece of delta.tool_calls ?? []) {
            while (this.calls.length <= piece.index) {
                this.calls.push({ id: "", type: "function", function: { name: "", arguments: "" } });
            }
            const call = this.calls[piece.index];
            if (piece.id != null)
                call.id = piece.id;
            if (piece.type != null)
                call.type = piece.type;
            if (piece.function.name != null)
                call.function.name += piece.function.name;
            if (piece.function.arguments != null)
                call.function.arguments += piece.function.arguments;
        }
    }
}
