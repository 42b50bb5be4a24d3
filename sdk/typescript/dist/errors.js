/** Typed errors: one class per kind of failure, each carrying the server's request id. */
/** The base of every error this SDK throws. */
export class StarfireError extends Error {
    name = "StarfireError";
}
/** An error that concerns a request to the API. */
export class APIError extends StarfireError {
    name = "APIError";
    /** The server's `x-request-id`, when the server answered. */
    requestId;
    constructor(message, requestId = null) {
        super(requestId ? `${message} (request id ${requestId})` : message);
        this.requestId = requestId;
    }
}
/** The server could not be reached, or the connection broke before an answer. */
export class APIConnectionError extends APIError {
    name = "APIConnectionError";
    constructor(message = "Connection error.", requestId = null, options) {
        super(message, requestId);
        if (options?.cause !== undefined)
            this.cause = options.cause;
    }
}
/** The request took longer than the client's timeout. */
export class APITimeoutError extends APIConnectionError {
    name = "APITimeoutError";
    constructor(message = "Request timed out.") {
        super(message);
    }
}
function errorFields(body) {
    if (body && typeof body === "object" && "error" in body) {
        const error = body.error;
        if (error && typeof error === "object")
            return error;
    }
    return {};
}
/** The server answered with a 4xx or 5xx status. */
export class APIStatusError extends APIError {
    name = "APIStatusError";
    status;
    headers;
    /** The parsed error body (or its text when it is not JSON). */
    body;
    code;
    type;
    param;
    constructor(status, headers, body) {
        const fields = errorFields(body);
        super(fields.message || `HTTP ${status}`, headers.get("x-request-id"));
        this.status = status;
        this.headers = headers;
        this.body = body;
        this.code = fields.code ?? null;
        this.type = fields.type ?? null;
        this.param = fields.param ?? null;
    }
}
/** 400: the request was malformed or not acceptable. */
export class BadRequestError extends APIStatusError {
    name = "BadRequestError";
}
/** 401: no credential, or an unknown, revoked or expired one. */
export class AuthenticationError extends APIStatusError {
    name = "AuthenticationError";
}
/** 403: the credential is valid but not allowed to do this. */
export class PermissionDeniedError extends APIStatusError {
    name = "PermissionDeniedError";
}
/** 404: no such resource (or model) for this organization. */
export class NotFoundError extends APIStatusError {
    name = "NotFoundError";
}
/** 409: the request conflicts with the current state. */
export class ConflictError extends APIStatusError {
    name = "ConflictError";
}
/** 422: well-formed input whose value is not acceptable. */
export class UnprocessableEntityError extends BadRequestError {
    name = "UnprocessableEntityError";
}
/** 429: a rate limit was reached; retried automatically before being thrown. */
export class RateLimitError extends APIStatusError {
    name = "RateLimitError";
}
/** 429 with code `insufficient_quota`: the budget or credit is spent; retrying does not help. */
export class InsufficientQuotaError extends RateLimitError {
    name = "InsufficientQuotaError";
}
/** 5xx: the server failed or is unavailable. */
export class InternalServerError extends APIStatusError {
    name = "InternalServerError";
}
/** An error the server sent inside a stream (SSE or WebSocket) that had already started. */
export class APIStreamError extends APIError {
    name = "APIStreamError";
    code;
    type;
    param;
    constructor(error, requestId) {
        super(error.message || "stream error", requestId);
        this.code = error.code ?? null;
        this.type = error.type ?? null;
        this.param = error.param ?? null;
    }
}
/** Whether an error body says the budget or credit is spent. */
export function isInsufficientQuota(body) {
    return errorFields(body).code === "insufficient_quota";
}
/** The typed error for an error answer. */
export function statusError(status, headers, body) {
    if (status === 400)
        return new BadRequestError(status, headers, body);
    if (status === 401)
        return new AuthenticationError(status, headers, body);
    if (status === 403)
        return new PermissionDeniedError(status, headers, body);
    if (status === 404)
        return new NotFoundError(status, headers, body);
    if (status === 409)
        return new ConflictError(status, headers, body);
    if (status === 422)
        return new UnprocessableEntityError(status, headers, body);
    if (status === 429) {
        return isInsufficientQuota(body)
            ? new InsufficientQuotaError(status, headers, body)
            : new RateLimitError(status, headers, body);
    }
    if (status >= 500)
        return new InternalServerError(status, headers, body);
    return new APIStatusError(status, headers, body);
}
