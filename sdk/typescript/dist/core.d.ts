/**
 * The hand-written core: configuration, the retry loop and typed errors. Paths and bodies are
 * typed by the generated `paths` and `components` (src/generated/openapi.ts), so a route that
 * leaves the spec stops compiling here.
 */
import type { paths } from "./generated/openapi.js";
export declare const DEFAULT_BASE_URL = "http://127.0.0.1:8080";
/** Milliseconds a request may take (for a stream: until the answer starts). */
export declare const DEFAULT_TIMEOUT_MS = 600000;
export declare const DEFAULT_MAX_RETRIES = 2;
export interface ClientOptions {
    /** Default: `STARFIRE_API_KEY`. */
    apiKey?: string;
    /** Default: `STARFIRE_BASE_URL`, else http://127.0.0.1:8080. */
    baseURL?: string;
    /** Milliseconds per request (default 600 000); a stream's timeout ends when it starts. */
    timeout?: number;
    /** Retries of a failed request (default 2). */
    maxRetries?: number;
    /** Another `fetch` (a proxy agent, a test double). */
    fetch?: typeof fetch;
}
/** Options every call takes. */
export interface RequestOptions {
    timeout?: number;
    maxRetries?: number;
    /** For a POST: the `Idempotency-Key` (default a fresh one, kept across the call's retries). */
    idempotencyKey?: string;
    signal?: AbortSignal;
}
/** Any path of the spec. */
export type Path = keyof paths;
type Method = "GET" | "POST" | "DELETE";
type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;
export interface Request extends RequestOptions {
    method: Method;
    /** A spec path, with `{param}`s filled in by `params`. */
    path: Path;
    params?: Record<string, string>;
    query?: Query;
    body?: unknown;
    /** Return the successful response unread (the caller reads or cancels its body). */
    stream?: boolean;
}
/** Milliseconds from `Retry-After` (delta-seconds or an HTTP date), when present and sane. */
export declare function retryAfterMs(headers: Headers): number | null;
/** The wait before retry number `attempt` (0-based): the server's `Retry-After` when it gives
 * one (null when it asks for longer than we wait), else exponential backoff with jitter. */
export declare function backoffMs(attempt: number, headers: Headers | null): number | null;
/** Sends requests with retries and turns error answers into typed errors. */
export declare class APIClient {
    readonly apiKey: string;
    readonly baseURL: string;
    readonly timeout: number;
    readonly maxRetries: number;
    private readonly fetch;
    constructor(options?: ClientOptions);
    /** The headers of every request. */
    authHeaders(): Record<string, string>;
    /** A spec path made into a URL. */
    url(path: Path, params?: Record<string, string>, query?: Query): string;
    /** Sends one call and parses its JSON answer. */
    json<T>(request: Request): Promise<T>;
    /**
     * Sends one logical request, retrying 408/409/429/5xx and connection failures with backoff.
     * A POST carries one `Idempotency-Key` across all its attempts. With `stream` the successful
     * response comes back unread, so a retry only ever happens before any of the body has been
     * handed to the caller.
     */
    send(request: Request): Promise<Response>;
}
export {};
