/**
 * Chat over a WebSocket (`GET /v1/chat/ws`): one socket carries many requests, each streamed as
 * `chat.delta` frames and ended by `chat.done` (or `error`). Node 20 has no global WebSocket,
 * so this uses the `ws` package.
 */

import type WebSocket from "ws";

import type { APIClient } from "./core.js";
import { APIConnectionError, APIStreamError, type ErrorFields, StarfireError, statusError } from "./errors.js";
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

type ServerFrame =
  | ChatDeltaFrame
  | ChatDoneFrame
  | { type: "error"; id: string | null; error: ErrorFields };

/** The `ws` package, loaded on first use so that the REST client works without it. */
async function loadWs(): Promise<typeof WebSocket> {
  try {
    return (await import("ws")).default;
  } catch (error) {
    throw new StarfireError(
      "The WebSocket helper needs the `ws` package: install the SDK with its dependencies " +
        `(npm install --install-links <path to sdk/typescript>) or add ws to your project (${String(error)})`,
    );
  }
}

/** An async queue of one request's deltas. */
class DeltaQueue {
  private items: ChatDeltaFrame[] = [];
  private waiting: (() => void) | null = null;
  ended = false;
  error: Error | null = null;

  push(frame: ChatDeltaFrame): void {
    this.items.push(frame);
    this.wake();
  }

  end(error: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }

  async *drain(): AsyncGenerator<ChatDeltaFrame> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        yield item;
        continue;
      }
      if (this.ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
}

/** One request on a socket: iterate it for the deltas; `done` resolves with the last frame. */
export class ChatSocketStream implements AsyncIterable<ChatDeltaFrame> {
  readonly id: string;
  /** The `chat.done` frame (with `usage`); rejects with the request's error. */
  readonly done: Promise<ChatDoneFrame>;
  private readonly queue = new DeltaQueue();
  private settle!: { resolve: (frame: ChatDoneFrame) => void; reject: (error: Error) => void };
  private readonly socket: ChatSocket;

  constructor(id: string, socket: ChatSocket) {
    this.id = id;
    this.socket = socket;
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Whoever iterates sees the error too; `done` alone must not crash the process.
    this.done.catch(() => undefined);
  }

  /** @internal */
  onFrame(frame: ServerFrame): void {
    if (frame.type === "chat.delta") this.queue.push(frame);
    else if (frame.type === "chat.done") {
      this.queue.end(null);
      this.settle.resolve(frame);
    } else this.fail(new APIStreamError(frame.error ?? {}, null));
  }

  /** @internal */
  fail(error: Error): void {
    this.queue.end(error);
    this.settle.reject(error);
  }

  [Symbol.asyncIterator](): AsyncIterator<ChatDeltaFrame> {
    return this.queue.drain();
  }

  /** The whole text of choice 0, once the request is done. */
  async text(): Promise<string> {
    let text = "";
    for await (const frame of this) if (frame.index === 0) text += frame.delta.content ?? "";
    return text;
  }

  /** Stops the request; it ends with `finish_reason: "cancelled"`. */
  cancel(): void {
    this.socket.send({ type: "cancel", id: this.id });
  }
}

export interface ChatSocketOptions {
  /** Authenticate with a single-use ticket (`POST /v1/ws/tickets`) in the URL instead of the
   * key header, as a browser must. Default false. */
  useTicket?: boolean;
  /** Milliseconds to wait for the socket to open (default: the client's timeout). */
  timeout?: number;
}

function headersOf(raw: Record<string, string | string[] | undefined>): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}

/** A chat WebSocket. Open it with `client.chat.ws()`; close it when done. */
export class ChatSocket {
  private readonly ws: WebSocket;
  private readonly running = new Map<string, ChatSocketStream>();
  private nextId = 1;
  private closedError: Error | null = null;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(data.toString()) as ServerFrame;
      } catch {
        return;
      }
      if (frame.id === null) {
        // A frame-level error: it cannot be told apart, so it ends every running request.
        const error = new APIStreamError(("error" in frame && frame.error) || {}, null);
        for (const stream of this.running.values()) stream.fail(error);
        this.running.clear();
        return;
      }
      const stream = this.running.get(frame.id);
      if (!stream) return;
      stream.onFrame(frame);
      if (frame.type !== "chat.delta") this.running.delete(frame.id);
    });
    ws.on("close", (code, reason) => {
      this.closedError = new APIConnectionError(
        `The WebSocket closed (${code}${reason.length ? `: ${reason.toString()}` : ""}).`,
      );
      for (const stream of this.running.values()) stream.fail(this.closedError);
      this.running.clear();
    });
    ws.on("error", () => undefined);
  }

  /** @internal Opens a socket; an upgrade the server refuses throws its typed error. */
  static async connect(client: APIClient, options: ChatSocketOptions = {}): Promise<ChatSocket> {
    const headers: Record<string, string> = client.authHeaders();
    let query: Record<string, string> | undefined;
    if (options.useTicket) {
      const ticket = await client.json<components["schemas"]["WsTicket"]>({ method: "POST", path: "/v1/ws/tickets" });
      query = { ticket: ticket.ticket };
      delete headers.Authorization;
    }
    const url = client.url("/v1/chat/ws", undefined, query).replace(/^http/, "ws");
    const WebSocketClass = await loadWs();
    const ws = new WebSocketClass(url, { headers, handshakeTimeout: options.timeout ?? client.timeout });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_request, response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          reject(statusError(response.statusCode ?? 0, headersOf(response.headers), body));
          ws.terminate();
        });
      });
      ws.once("error", (error) => reject(new APIConnectionError(`WebSocket error: ${error.message}`, null, { cause: error })));
    });
    return new ChatSocket(ws);
  }

  /** @internal */
  send(frame: object): void {
    if (this.closedError) throw this.closedError;
    this.ws.send(JSON.stringify(frame));
  }

  /** Starts a chat request on the socket. Several may run at once. */
  chat(request: ChatSocketRequest, options: { id?: string } = {}): ChatSocketStream {
    const id = options.id ?? `r${this.nextId++}`;
    if (this.running.has(id)) throw new Error(`request id ${id} is already running on this socket`);
    const stream = new ChatSocketStream(id, this);
    this.running.set(id, stream);
    try {
      this.send({ ...request, type: "chat.request", id });
    } catch (error) {
      this.running.delete(id);
      throw error;
    }
    return stream;
  }

  /** Closes the socket; running requests are aborted on the server. */
  close(): Promise<void> {
    if (this.ws.readyState === this.ws.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once("close", () => resolve());
      this.ws.close(1000);
    });
  }
}
