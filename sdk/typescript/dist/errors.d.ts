/** Typed errors: one class per kind of failure, each carrying the server's request id. */
/** The base of every error this SDK throws. */
export declare class StarfireError extends Error {
    name: string;
}
/** An error that concerns a request to the API. */
export declare class APIError extends StarfireError {
    name: string;
    /** The server's `x-request-id`, when the server answered. */
    readonly requestId: string | null;
    constructor(message: string, requestId?: string | null);
}
/** The server could not be reached, or the connection broke before an answer. */
export declare class APIConnectionError extends APIError {
    name: string;
    constructor(message?: string, requestId?: string | null, options?: {
        cause?: unknown;
    });
}
/** The request took longer than the client's timeout. */
export declare class APITimeoutError extends APIConnectionError {
    name: string;
    constructor(message?: string);
}
/** OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. */
export interface ErrorFields {
    message?: string | null;
    type?: string | null;
    param?: string | null;
    code?: string | null;
}
/** The server answered with a 4xx or 5xx status. */
export declare class APIStatusError extends APIError {
    name: string;
    readonly status: number;
    readonly headers: Headers;
    /** The parsed error body (or its text when it is not JSON). */
    readonly body: unknown;
    readonly code: string | null;
    readonly type: string | null;
    readonly param: string | null;
    constructor(status: number, headers: Headers, body: unknown);
}
/** 400: the request was malformed or not acceptable. */
export declare class BadRequestError extends APIStatusError {
    name: string;
}
/** 401: no credential, or an unknown, revoked or expired one. */
export declare class AuthenticationError extends APIStatusError {
    name: string;
}
/** 403: the credential is valid but not allowed to do this. */
export declare class PermissionDeniedError extends APIStatusError {
    name: string;
}
/** 404: no such resource (or model) for this organization. */
export declare class NotFoundError extends APIStatusError {
    name: string;
}
/** 409: the request conflicts with the current state. */
export declare class ConflictError extends APIStatusError {
    name: string;
}
/** 422: well-formed input whose value is not acceptable. */
export declare class UnprocessableEntityError extends BadRequestError {
    name: string;
}
/** 429: a rate limit was reached; retried automatically before being thrown. */
export declare class RateLimitError extends APIStatusError {
    name: string;
}
/** 429 with code `insufficient_quota`: the budget or credit is spent; retrying does not help. */
export declare class InsufficientQuotaError extends RateLimitError {
    name: string;
}
/** 5xx: the server failed or is unavailable. */
export declare class InternalServerError extends APIStatusError {
    name: string;
}
/** An error the server sent inside a stream (SSE or WebSocket) that had already started. */
export declare class APIStreamError extends APIError {
    name: string;
    readonly code: string | null;
    readonly type: string | null;
    readonly param: string | null;
    constructor(error: ErrorFields, requestId: string | null);
}
/** Whether an error body says the budget or credit is spent. */
export declare function isInsufficientQuota(body: unknown): boolean;
/** The typed error for an error answer. */
export declare function statusError(status: number, headers: Headers, body: unknown): APIStatusError;
