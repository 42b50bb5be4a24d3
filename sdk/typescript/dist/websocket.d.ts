/**
 * Chat over a WebSocket (`GET /v1/chat/ws`): one socket carries many requests, each streamed as
 * `chat.delta` frames and ended by `chat.done` (or `error`). Node 20 has no global WebSocket,
 * so this uses the `ws` package.
 */
import type { APIClient } from "./core.js";
import { type ErrorFields } from "./errors.js";
import type { components } from "./generated/openapi.js";
import type { ChoiceDelta } from "./streaming.js";
/** A chat request on the socket: the body of `POST /v1/chat/completions` (always streamed). */
export type ChatSocketRequest = Omit<components["schemas"]["ChatCompletionRequest"], "stream">;
/** The next piece of one choice. */
export interface ChatDeltaFrame {
    type: "chat.delta";
    id: string;
    index: number;
    delta: ChoiceDelta;
    logprobs?: components["schemas"]["ChoiceLogprobs"] | null;
}
/** A request's last frame. */
export interface ChatDoneFrame {
    type: "chat.done";
    id: string;
    completion_id: string;
    model: string;
    /** `stop`, `length` or `cancelled`; an array by choice index when `n` > 1. */
    finish_reason: string | string[];
    /** Null when cancelled. */
    usage: components["schemas"]["UsageObject"] | null;
}
type ServerFrame = ChatDeltaFrame | ChatDoneFrame | {
    type: "error";
    id: string | null;
    error: ErrorFields;
};
/** One request on a socket: iterate it for the deltas; `done` resolves with the last frame. */
export declare class ChatSocketStream implements AsyncIterable<ChatDeltaFrame> {
    readonly id: string;
    /** The `chat.done` frame (with `usage`); rejects with the request's error. */
    readonly done: Promise<ChatDoneFrame>;
    private readonly queue;
    private settle;
    private readonly socket;
    constructor(id: string, socket: ChatSocket);
    /** @internal */
    onFrame(frame: ServerFrame): void;
    /** @internal */
    fail(error: Error): void;
    [Symbol.asyncIterator](): AsyncIterator<ChatDeltaFrame>;
    /** The whole text of choice 0, once the request is done. */
    text(): Promise<string>;
    /** Stops the request; it ends with `finish_reason: "cancelled"`. */
    cancel(): void;
}
export interface ChatSocketOptions {
    /** Authenticate with a single-use ticket (`POST /v1/ws/tickets`) in the URL instead of the
     * key header, as a browser must. Default false. */
    useTicket?: boolean;
    /** Milliseconds to wait for the socket to open (default: the client's timeout). */
    timeout?: number;
}
/** A chat WebSocket. Open it with `client.chat.ws()`; close it when done. */
export declare class ChatSocket {
    private readonly ws;
    private readonly running;
    private nextId;
    private closedError;
    private constructor();
    /** @internal Opens a socket; an upgrade the server refuses throws its typed error. */
    static connect(client: APIClient, options?: ChatSocketOptions): Promise<ChatSocket>;
    /** @internal */
    send(frame: object): void;
    /** Starts a chat request on the socket. Several may run at once. */
    chat(request: ChatSocketRequest, options?: {
        id?: string;
    }): ChatSocketStream;
    /** Closes the socket; running requests are aborted on the server. */
    close(): Promise<void>;
}
export {};
