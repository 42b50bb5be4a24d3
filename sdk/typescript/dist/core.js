/**
 * The hand-written core: configuration, the retry loop and typed errors. Paths and bodies are
 * typed by the generated `paths` and `components` (src/generated/openapi.ts), so a route that
 * leaves the spec stops compiling here.
 */
import { randomUUID } from "node:crypto";
import { APIConnectionError, APITimeoutError, StarfireError, isInsufficientQuota, statusError, } from "./errors.js";
import { VERSION } from "./version.js";
export const DEFAULT_BASE_URL = "http://127.0.0.1:8080";
/** Milliseconds a request may take (for a stream: until the answer starts). */
export const DEFAULT_TIMEOUT_MS = 600_000;
export const DEFAULT_MAX_RETRIES = 2;
const INITIAL_RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 8_000;
/** A `Retry-After` beyond this is not waited for: the error is thrown instead. */
const MAX_RETRY_AFTER_MS = 60_000;
/** Milliseconds from `Retry-After` (delta-seconds or an HTTP date), when present and sane. */
export function retryAfterMs(headers) {
    const value = headers.get("retry-after");
    if (value === null)
        return null;
    const seconds = Number(value);
    if (value.trim() !== "" && Number.isFinite(seconds))
        return Math.max(seconds * 1000, 0);
    const date = Date.parse(value);
    return Number.isNaN(date) ? null : Math.max(date - Date.now(), 0);
}
/** The wait before retry number `attempt` (0-based): the server's `Retry-After` when it gives
 * one (null when it asks for longer than we wait), else exponential backoff with jitter. */
export function backoffMs(attempt, headers) {
    const after = headers ? retryAfterMs(headers) : null;
    if (after !== null)
        return after <= MAX_RETRY_AFTER_MS ? after : null;
    const delay = Math.min(INITIAL_RETRY_DELAY_MS * 2 ** attempt, MAX_RETRY_DELAY_MS);
    return delay * (1 - 0.25 * Math.random());
}
function retryable(status, body) {
    // A spent quota does not come back by waiting.
    if (status === 429)
        return !isInsufficientQuota(body);
    return status === 408 || status === 409 || status >= 500;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function fillPath(path, params = {}) {
    return path.replace(/\{(\w+)\}/g, (_, name) => {
        const value = params[name];
        if (value === undefined)
            throw new StarfireError(`missing path parameter ${name}`);
        return encodeURIComponent(value);
    });
}
function queryString(query) {
    if (!query)
        return "";
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
        if (value === undefined || value === null)
            continue;
        if (Array.isArray(value))
            for (const item of value)
                search.append(name, String(item));
        else
            search.append(name, String(value));
    }
    const text = search.toString();
    return text ? `?${text}` : "";
}
/** What went wrong, including what fetch wraps as its `cause` (ECONNREFUSED, ...). */
function describe(error) {
    const text = error instanceof Error ? error.message : String(error);
    const cause = error instanceof Error ? error.cause : undefined;
    return cause instanceof Error ? `${text}: ${cause.message}` : text;
}
async function readBody(response) {
    const text = await response.text();
    try {
        return JSON.parse(text);
    }
    catch {
        return text;
    }
}
/** Sends requests with retries and turns error answers into typed errors. */
export class APIClient {
    apiKey;
    baseURL;
    timeout;
    maxRetries;
    fetch;
    constructor(options = {}) {
        const apiKey = options.apiKey ?? process.env.STARFIRE_API_KEY;
        if (!apiKey) {
            throw new StarfireError("No API key: pass { apiKey } or set the STARFIRE_API_KEY environment variable.");
        }
        this.apiKey = apiKey;
        this.baseURL = (options.baseURL || process.env.STARFIRE_BASE_URL || DEFAULT_BASE_URL).replace(/\/+$/, "");
        const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
        if (!Number.isInteger(maxRetries) || maxRetries < 0) {
            throw new StarfireError("maxRetries must be an integer, 0 or more");
        }
        this.maxRetries = maxRetries;
        this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
        this.fetch = options.fetch ?? globalThis.fetch;
    }
    /** The headers of every request. */
    authHeaders() {
        return {
            Authorization: `Bearer ${this.apiKey}`,
            "User-Agent": `starfire-typescript/${VERSION}`,
        };
    }
    /** A spec path made into a URL. */
    url(path, params, query) {
        return this.baseURL + fillPath(path, params) + queryString(query);
    }
    /** Sends one call and parses its JSON answer. */
    async json(request) {
        const response = await this.send({ ...request, stream: false });
        return (await response.json());
    }
    /**
     * Sends one logical request, retrying 408/409/429/5xx and connection failures with backoff.
     * A POST carries one `Idempotency-Key` across all its attempts. With `stream` the successful
     * response comes back unread, so a retry only ever happens before any of the body has been
     * handed to the caller.
     */
    async send(request) {
        const headers = { ...this.authHeaders(), Accept: "application/json" };
        if (request.stream)
            headers.Accept = "text/event-stream";
        if (request.body !== undefined)
            headers["Content-Type"] = "application/json";
        if (request.method === "POST") {
            headers["Idempotency-Key"] = request.idempotencyKey ?? `sf-ts-${randomUUID()}`;
        }
        const url = this.url(request.path, request.params, request.query);
        const body = request.body === undefined ? undefined : JSON.stringify(request.body);
        const retries = request.maxRetries ?? this.maxRetries;
        const timeout = request.timeout ?? this.timeout;
        for (let attempt = 0;; attempt++) {
            const controller = new AbortController();
            const onAbort = () => controller.abort(request.signal?.reason);
            request.signal?.addEventListener("abort", onAbort, { once: true });
            let timedOut = false;
            const timer = setTimeout(() => {
                timedOut = true;
                controller.abort();
            }, timeout);
            let handedOver = false;
            try {
                let response;
                try {
                    response = await this.fetch(url, { method: request.method, headers, body, signal: controller.signal });
                    if (response.ok) {
                        if (request.stream) {
                            // From here the caller owns the body; its own abort signal still stops it.
                            handedOver = true;
                            return response;
                        }
                        // Read the whole answer under the timeout.
                        const text = await response.text();
                        return new Response(text, { status: response.status, headers: response.headers });
                    }
                }
                catch (error) {
                    if (request.signal?.aborted)
                        throw error;
                    if (attempt < retries) {
                        await sleep(backoffMs(attempt, null) ?? 0);
                        continue;
                    }
                    if (timedOut)
                        throw new APITimeoutError();
                    throw new APIConnectionError(`Connection error: ${describe(error)}`, null, { cause: error });
                }
                // An error answer: read it (it is small) and decide.
                let errorBody;
                try {
                    errorBody = await readBody(response);
                }
                catch (error) {
                    throw new APIConnectionError(`Connection error: ${describe(error)}`, response.headers.get("x-request-id"), {
                        cause: error,
                    });
                }
                if (attempt < retries && retryable(response.status, errorBody)) {
                    const delay = backoffMs(attempt, response.headers);
                    if (delay !== null) {
                        await sleep(delay);
                        continue;
                    }
                }
                throw statusError(response.status, response.headers, errorBody);
            }
            finally {
                clearTimeout(timer);
                if (!handedOver)
                    request.signal?.removeEventListener("abort", onAbort);
            }
        }
    }
}
