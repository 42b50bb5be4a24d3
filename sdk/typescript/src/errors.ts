/** Typed errors: one class per kind of failure, each carrying the server's request id. */

/** The base of every error this SDK throws. */
export class StarfireError extends Error {
  override name = "StarfireError";
}

/** An error that concerns a request to the API. */
export class APIError extends StarfireError {
  override name = "APIError";
  /** The server's `x-request-id`, when the server answered. */
  readonly requestId: string | null;

  constructor(message: string, requestId: string | null = null) {
    super(requestId ? `${message} (request id ${requestId})` : message);
    this.requestId = requestId;
  }
}

/** The server could not be reached, or the connection broke before an answer. */
export class APIConnectionError extends APIError {
  override name = "APIConnectionError";
  constructor(message = "Connection error.", requestId: string | null = null, options?: { cause?: unknown }) {
    super(message, requestId);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** The request took longer than the client's timeout. */
export class APITimeoutError extends APIConnectionError {
  override name = "APITimeoutError";
  constructor(message = "Request timed out.") {
    super(message);
  }
}

/** OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. */
export interface ErrorFields {
  message?: string | null;
  type?: string | null;
  param?: string | null;
  code?: string | null;
}

function errorFields(body: unknown): ErrorFields {
  if (body && typeof body === "object" && "error" in body) {
    const error = (body as { error: unknown }).error;
    if (error && typeof error === "object") return error as ErrorFields;
  }
  return {};
}

/** The server answered with a 4xx or 5xx status. */
export class APIStatusError extends APIError {
  override name = "APIStatusError";
  readonly status: number;
  readonly headers: Headers;
  /** The parsed error body (or its text when it is not JSON). */
  readonly body: unknown;
  readonly code: string | null;
  readonly type: string | null;
  readonly param: string | null;

  constructor(status: number, headers: Headers, body: unknown) {
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
  override name = "BadRequestError";
}
/** 401: no credential, or an unknown, revoked or expired one. */
export class AuthenticationError extends APIStatusError {
  override name = "AuthenticationError";
}
/** 403: the credential is valid but not allowed to do this. */
export class PermissionDeniedError extends APIStatusError {
  override name = "PermissionDeniedError";
}
/** 404: no such resource (or model) for this organization. */
export class NotFoundError extends APIStatusError {
  override name = "NotFoundError";
}
/** 409: the request conflicts with the current state. */
export class ConflictError extends APIStatusError {
  override name = "ConflictError";
}
/** 422: well-formed input whose value is not acceptable. */
export class UnprocessableEntityError extends BadRequestError {
  override name = "UnprocessableEntityError";
}
/** 429: a rate limit was reached; retried automatically before being thrown. */
export class RateLimitError extends APIStatusError {
  override name = "RateLimitError";
}
/** 429 with code `insufficient_quota`: the budget or credit is spent; retrying does not help. */
export class InsufficientQuotaError extends RateLimitError {
  override name = "InsufficientQuotaError";
}
/** 5xx: the server failed or is unavailable. */
export class InternalServerError extends APIStatusError {
  override name = "InternalServerError";
}

/** An error the server sent inside a stream (SSE or WebSocket) that had already started. */
export class APIStreamError extends APIError {
  override name = "APIStreamError";
  readonly code: string | null;
  readonly type: string | null;
  readonly param: string | null;

  constructor(error: ErrorFields, requestId: string | null) {
    super(error.message || "stream error", requestId);
    this.code = error.code ?? null;
    this.type = error.type ?? null;
    this.param = error.param ?? null;
  }
}

/** Whether an error body says the budget or credit is spent. */
export function isInsufficientQuota(body: unknown): boolean {
  return errorFields(body).code === "insufficient_quota";
}

/** The typed error for an error answer. */
export function statusError(status: number, headers: Headers, body: unknown): APIStatusError {
  if (status === 400) return new BadRequestError(status, headers, body);
  if (status === 401) return new AuthenticationError(status, headers, body);
  if (status === 403) return new PermissionDeniedError(status, headers, body);
  if (status === 404) return new NotFoundError(status, headers, body);
  if (status === 409) return new ConflictError(status, headers, body);
  if (status === 422) return new UnprocessableEntityError(status, headers, body);
  if (status === 429) {
    return isInsufficientQuota(body)
      ? new InsufficientQuotaError(status, headers, body)
      : new RateLimitError(status, headers, body);
  }
  if (status >= 500) return new InternalServerError(status, headers, body);
  return new APIStatusError(status, headers, body);
}
