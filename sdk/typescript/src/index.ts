/**
 * The TypeScript SDK of Starfire's OpenAI-compatible API.
 *
 * ```ts
 * import { Starfire } from "starfire";
 *
 * const client = new Starfire(); // STARFIRE_API_KEY, STARFIRE_BASE_URL
 * const stream = await client.chat.completions.create({
 *   model: "smollm2-135m-instruct",
 *   messages: [{ role: "user", content: "Hello" }],
 *   stream: true,
 * });
 * for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? "");
 * ```
 */

import { APIClient, type ClientOptions } from "./core.js";
import { Billing, Budgets, Chat, Costs, CreditsResource, Deployments, Models, Projects, Usage, WsTickets } from "./resources.js";

/**
 * A client of one Starfire server. `apiKey` defaults to `STARFIRE_API_KEY`, `baseURL` to
 * `STARFIRE_BASE_URL` (else http://127.0.0.1:8080). Failed requests (408, 409, 429, 5xx,
 * connection errors) are retried `maxRetries` times with exponential backoff and jitter,
 * honouring `Retry-After`.
 */
export class Starfire extends APIClient {
  readonly chat: Chat;
  readonly models: Models;
  readonly projects: Projects;
  readonly deployments: Deployments;
  readonly usage: Usage;
  readonly costs: Costs;
  readonly credits: CreditsResource;
  readonly billing: Billing;
  readonly budgets: Budgets;
  readonly wsTickets: WsTickets;

  constructor(options: ClientOptions = {}) {
    super(options);
    this.chat = new Chat(this);
    this.models = new Models(this);
    this.projects = new Projects(this);
    this.deployments = new Deployments(this);
    this.usage = new Usage(this);
    this.costs = new Costs(this);
    this.credits = new CreditsResource(this);
    this.billing = new Billing(this);
    this.budgets = new Budgets(this);
    this.wsTickets = new WsTickets(this);
  }
}

export default Starfire;
export { APIClient, DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_MS } from "./core.js";
export type { ClientOptions, RequestOptions } from "./core.js";
export * from "./errors.js";
export { Page, PagePromise } from "./pagination.js";
export { Stream, ToolCallAccumulator } from "./streaming.js";
export type { ChatCompletionChunk, ChoiceDelta, ChunkChoice, ToolCall, ToolCallDelta } from "./streaming.js";
export { ChatSocket, ChatSocketStream } from "./websocket.js";
export type { ChatDeltaFrame, ChatDoneFrame, ChatSocketOptions, ChatSocketRequest } from "./websocket.js";
export type * from "./resources.js";
export type { components, operations, paths } from "./generated/openapi.js";
export { VERSION } from "./version.js";
