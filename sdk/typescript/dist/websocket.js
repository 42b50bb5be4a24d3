/**
 * Chat over a WebSocket (`GET /v1/chat/ws`): one socket carries many requests, each streamed as
 * `chat.delta` frames and ended by `chat.done` (or `error`). Node 20 has no global WebSocket,
 * so this uses the `ws` package.
 */
import { APIConnectionError, APIStreamError, StarfireError, statusError } from "./errors.js";
/** The `ws` package, loaded on first use so that the REST client works without it. */
async function loadWs() {
    try {
        return (await import("ws")).default;
    }
    catch (error) {
        throw new StarfireError("The WebSocket helper needs the `ws` package: install the SDK with its dependencies " +
            `(npm install --install-links <path to sdk/typescript>) or add ws to your project (${String(error)})`);
    }
}
/** An async queue of one request's deltas. */
class DeltaQueue {
    items = [];
    waiting = null;
    ended = false;
    error = null;
    push(frame) {
        this.items.push(frame);
        this.wake();
    }
    end(error) {
        if (this.ended)
            return;
        this.ended = true;
        this.error = error;
        this.wake();
    }
    wake() {
        const waiting = this.waiting;
        this.waiting = null;
        waiting?.();
    }
    async *drain() {
        for (;;) {
            const item = this.items.shift();
            if (item) {
                yield item;
                continue;
            }
            if (this.ended) {
                if (this.error)
                    throw this.error;
                return;
            }
            await new Promise((resolve) => (this.waiting = resolve));
        }
    }
}
/** One request on a socket: iterate it for the deltas; `done` resolves with the last frame. */
export class ChatSocketStream {
    id;
    /** The `chat.done` frame (with `usage`); rejects with the request's error. */
    done;
    queue = new DeltaQueue();
    settle;
    socket;
    constructor(id, socket) {
        this.id = id;
        this.socket = socket;
        this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
        // Whoever iterates sees the error too; `done` alone must not crash the process.
        this.done.catch(() => undefined);
    }
    /** @internal */
    onFrame(frame) {
        if (frame.type === "chat.delta")
            this.queue.push(frame);
        else if (frame.type === "chat.done") {
            this.queue.end(null);
            this.settle.resolve(frame);
        }
        else
            this.fail(new APIStreamError(frame.error ?? {}, null));
    }
    /** @internal */
    fail(error) {
        this.queue.end(error);
        this.settle.reject(error);
    }
    [Symbol.asyncIterator]() {
        return this.queue.drain();
    }
    /** The whole text of choice 0, once the request is done. */
    async text() {
        let text = "";
        for await (const frame of this)
            if (frame.index === 0)
                text += frame.delta.content ?? "";
        return text;
    }
    /** Stops the request; it ends with `finish_reason: "cancelled"`. */
    cancel() {
        this.socket.send({ type: "cancel", id: this.id });
    }
}
function headersOf(raw) {
    const headers = new Headers();
    for (const [name, value] of Object.entries(raw)) {
        if (Array.isArray(value))
            for (const v of value)
                headers.append(name, v);
        else if (value !== undefined)
            headers.set(name, value);
    }
    return headers;
}
/** A chat WebSocket. Open it with `client.chat.ws()`; close it when done. */
export class ChatSocket {
    ws;
    running = new Map();
    nextId = 1;
    closedError = null;
    constructor(ws) {
        this.ws = ws;
        ws.on("message", (data, isBinary) => {
            if (isBinary)
                return;
            let frame;
            try {
                frame = JSON.parse(data.toString());
            }
            catch {
                return;
            }
            if (frame.id === null) {
                // A frame-level error: it cannot be told apart, so it ends every running request.
                const error = new APIStreamError(("error" in frame && frame.error) || {}, null);
                for (const stream of this.running.values())
                    stream.fail(error);
                this.running.clear();
                return;
            }
            const stream = this.running.get(frame.id);
            if (!stream)
                return;
            stream.onFrame(frame);
            if (frame.type !== "chat.delta")
                this.running.delete(frame.id);
        });
        ws.on("close", (code, reason) => {
            this.closedError = new APIConnectionError(`The WebSocket closed (${code}${reason.length ? `: ${reason.toString()}` : ""}).`);
            for (const stream of this.running.values())
                stream.fail(this.closedError);
            this.running.clear();
        });
        ws.on("error", () => undefined);
    }
    /** @internal Opens a socket; an upgrade the server refuses throws its typed error. */
    static async connect(client, options = {}) {
        const headers = client.authHeaders();
        let query;
        if (options.useTicket) {
            const ticket = await client.json({ method: "POST", path: "/v1/ws/tickets" });
            query = { ticket: ticket.ticket };
            delete headers.Authorization;
        }
        const url = client.url("/v1/chat/ws", undefined, query).replace(/^http/, "ws");
        const WebSocketClass = await loadWs();
        const ws = new WebSocketClass(url, { headers, handshakeTimeout: options.timeout ?? client.timeout });
        await new Promise((resolve, reject) => {
            ws.once("open", () => resolve());
            ws.once("unexpected-response", (_request, response) => {
                const chunks = [];
                response.on("data", (chunk) => chunks.push(chunk));
                response.on("end", () => {
                    const text = Buffer.concat(chunks).toString();
                    let body = text;
                    try {
                        body = JSON.parse(text);
                    }
                    catch {
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
    send(frame) {
        if (this.closedError)
            throw this.closedError;
        this.ws.send(JSON.stringify(frame));
    }
    /** Starts a chat request on the socket. Several may run at once. */
    chat(request, options = {}) {
        const id = options.id ?? `r${this.nextId++}`;
        if (this.running.has(id))
            throw new Error(`request id ${id} is already running on this socket`);
        const stream = new ChatSocketStream(id, this);
        this.running.set(id, stream);
        try {
            this.send({ ...request, type: "chat.request", id });
        }
        catch (error) {
            this.running.delete(id);
            throw error;
        }
        return stream;
    }
    /** Closes the socket; running requests are aborted on the server. */
    close() {
        if (this.ws.readyState === this.ws.CLOSED)
            return Promise.resolve();
        return new Promise((resolve) => {
            this.ws.once("close", () => resolve());
            this.ws.close(1000);
        });
    }
}
