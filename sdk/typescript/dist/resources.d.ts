/**
 * Resources: `client.chat.completions`, `client.chat.ws()`, `client.models`, `client.projects`,
 * `client.projects.apiKeys`, `client.deployments`, `client.usage`, `client.costs`,
 * `client.credits`, `client.billing`, `client.budgets`. Paths, bodies and answers are the generated spec types.
 */
import type { APIClient, RequestOptions } from "./core.js";
import type { components, operations } from "./generated/openapi.js";
import { type PagePromise } from "./pagination.js";
import { type ChatCompletionChunk, Stream } from "./streaming.js";
import { ChatSocket, type ChatSocketOptions } from "./websocket.js";
type Schemas = components["schemas"];
export type ChatCompletion = Schemas["ChatCompletion"];
export type ChatCompletionRequest = Schemas["ChatCompletionRequest"];
export type ChatCompletionCreateParams = Omit<ChatCompletionRequest, "stream">;
export type Model = Schemas["ModelObject"];
export type Project = Schemas["ProjectObject"];
export type ProjectCreate = Schemas["ProjectCreate"];
export type ProjectUpdate = Schemas["ProjectUpdate"];
export type ApiKey = Schemas["ApiKeyObject"];
export type ApiKeyCreate = Schemas["ApiKeyCreate"];
export type ApiKeyUpdate = Schemas["ApiKeyUpdate"];
export type CreatedApiKey = Schemas["CreatedApiKey"];
export type DeletedObject = Schemas["DeletedObject"];
export type Deployment = Schemas["DeploymentObject"];
export type DeploymentCreate = Schemas["DeploymentCreate"];
export type DeploymentUpdate = Schemas["DeploymentUpdate"];
export type DeploymentEvent = Schemas["DeploymentEventObject"];
export type ReplicaRange = Schemas["ReplicaRange"];
export type WsTicket = Schemas["WsTicket"];
export type CompletionsUsageBucket = Schemas["UsageBucket_CompletionsUsageResult"];
export type EmbeddingsUsageBucket = Schemas["UsageBucket_EmbeddingsUsageResult"];
export type CostBucket = Schemas["UsageBucket_CostResult"];
export type Credits = Schemas["CreditsObject"];
export type Balance = Schemas["BalanceObject"];
export type LedgerEntry = Schemas["LedgerEntryObject"];
export type Invoice = Schemas["InvoiceObject"];
export type InvoiceLine = Schemas["InvoiceLineObject"];
export type Price = Schemas["PriceObject"];
export type TopUp = Schemas["TopUpObject"];
export type TopUpCreate = Schemas["TopUpCreate"];
export type Budget = Schemas["BudgetObject"];
export type BudgetUpdate = Schemas["BudgetUpdate"];
/** Query of `GET /v1/billing/prices`. */
export type PricesParams = NonNullable<operations["list_prices"]["parameters"]["query"]>;
/** Query of `GET /v1/organization/usage/completions` (less `page`, which the pager drives). */
export type CompletionsUsageParams = Omit<NonNullable<operations["usage_completions"]["parameters"]["query"]>, "page">;
export type EmbeddingsUsageParams = Omit<NonNullable<operations["usage_embeddings"]["parameters"]["query"]>, "page">;
export type CostsParams = Omit<NonNullable<operations["costs"]["parameters"]["query"]>, "page">;
export interface ListParams {
    limit?: number;
}
export declare class ChatCompletions {
    private readonly client;
    constructor(client: APIClient);
    /** Creates a chat completion; with `stream: true`, an async iterator of typed chunks. */
    create(params: ChatCompletionCreateParams & {
        stream?: false | null;
    }, options?: RequestOptions): Promise<ChatCompletion>;
    create(params: ChatCompletionCreateParams & {
        stream: true;
    }, options?: RequestOptions): Promise<Stream<ChatCompletionChunk>>;
}
export declare class Chat {
    private readonly client;
    readonly completions: ChatCompletions;
    constructor(client: APIClient);
    /** Opens a chat WebSocket (`GET /v1/chat/ws`); close it when done. */
    ws(options?: ChatSocketOptions): Promise<ChatSocket>;
}
export declare class Models {
    private readonly client;
    constructor(client: APIClient);
    list(options?: RequestOptions): Promise<Model[]>;
    retrieve(model: string, options?: RequestOptions): Promise<Model>;
}
/** A project's API keys. */
export declare class ApiKeys {
    private readonly client;
    constructor(client: APIClient);
    /** Creates a key; `value` of the answer is the only time the secret is shown. */
    create(projectId: string, body: ApiKeyCreate, options?: RequestOptions): Promise<CreatedApiKey>;
    /** The project's live keys: `await` for the first page, `for await` for all of them. */
    list(projectId: string, params?: ListParams, options?: RequestOptions): PagePromise<ApiKey>;
    retrieve(projectId: string, keyId: string, options?: RequestOptions): Promise<ApiKey>;
    update(projectId: string, keyId: string, body: ApiKeyUpdate, options?: RequestOptions): Promise<ApiKey>;
    /** Revokes a key: it stops working at once. */
    delete(projectId: string, keyId: string, options?: RequestOptions): Promise<DeletedObject>;
}
export declare class Projects {
    private readonly client;
    readonly apiKeys: ApiKeys;
    constructor(client: APIClient);
    create(body: ProjectCreate, options?: RequestOptions): Promise<Project>;
    /** The organization's projects: `await` for the first page, `for await` for all of them. */
    list(params?: ListParams & {
        include_archived?: boolean;
    }, options?: RequestOptions): PagePromise<Project>;
    retrieve(projectId: string, options?: RequestOptions): Promise<Project>;
    update(projectId: string, body: ProjectUpdate, options?: RequestOptions): Promise<Project>;
    archive(projectId: string, options?: RequestOptions): Promise<Project>;
}
/**
 * The organization's private deployments: replicas of a model that only its requests reach (a
 * request puts the deployment's `name` in `model`). A new deployment waits for a platform
 * operator's approval (`state` `requested`) unless the installation approves automatically.
 */
export declare class Deployments {
    private readonly client;
    constructor(client: APIClient);
    /**
     * Requests a deployment of a served `model` under `name`. Left out, the server's defaults
     * apply: `replicas` `{ min: 1, max: 1 }`, `hardware` `cpu`, the installation's
     * `kv_cache_memory`, the model's `max_model_len`, `overflow` `none` (`shared` lets the shared
     * pool answer while no replica is ready).
     */
    create(body: DeploymentCreate, options?: RequestOptions): Promise<Deployment>;
    /** The organization's deployments: `await` for the first page, `for await` for all of them. */
    list(params?: ListParams & {
        include_deleted?: boolean;
    }, options?: RequestOptions): PagePromise<Deployment>;
    retrieve(deploymentId: string, options?: RequestOptions): Promise<Deployment>;
    /** Scales a deployment to `{ replicas: { min, max } }`; a serving one goes to `scaling` until
     * the new count is ready. */
    update(deploymentId: string, body: DeploymentUpdate, options?: RequestOptions): Promise<Deployment>;
    /** Stops its replicas (reserved capacity is no longer charged); its requests get 503
     * `deployment_not_ready` until it is started again. */
    stop(deploymentId: string, options?: RequestOptions): Promise<Deployment>;
    /** Starts a stopped (or failed) deployment again. */
    start(deploymentId: string, options?: RequestOptions): Promise<Deployment>;
    /** Deletes a deployment: it answers in state `deleting`, then becomes `deleted` (its name is
     * free again; its history and charges stay). */
    delete(deploymentId: string, options?: RequestOptions): Promise<Deployment>;
    /** The deployment's history of states, oldest first. */
    events(deploymentId: string, options?: RequestOptions): Promise<DeploymentEvent[]>;
}
/** Token usage in time buckets: `await` for the first page of buckets, `for await` for all. */
export declare class Usage {
    private readonly client;
    constructor(client: APIClient);
    completions(params: CompletionsUsageParams, options?: RequestOptions): PagePromise<CompletionsUsageBucket>;
    embeddings(params: EmbeddingsUsageParams, options?: RequestOptions): PagePromise<EmbeddingsUsageBucket>;
}
/** What the organization spent, per day. */
export declare class Costs {
    private readonly client;
    constructor(client: APIClient);
    list(params: CostsParams, options?: RequestOptions): PagePromise<CostBucket>;
}
/** The organization's prepaid credits and ledger. */
export declare class CreditsResource {
    private readonly client;
    constructor(client: APIClient);
    retrieve(options?: RequestOptions): Promise<Credits>;
}
/** The organization's balance, ledger, invoices and the price catalog (amounts in micro-USD:
 * 1 USD = 1,000,000). */
export declare class Billing {
    private readonly client;
    constructor(client: APIClient);
    /** The prepaid balance: what the ledger holds, what is reserved, what is available. */
    balance(options?: RequestOptions): Promise<Balance>;
    /** The ledger's entries, newest first: `await` for the first page, `for await` for all. */
    ledger(params?: ListParams, options?: RequestOptions): PagePromise<LedgerEntry>;
    /** The finalized invoices: `await` for the first page, `for await` for all. */
    invoices(params?: ListParams, options?: RequestOptions): PagePromise<Invoice>;
    /** The draft invoice of a month (`YYYY-MM`, UTC; default the current one). */
    upcomingInvoice(period?: string, options?: RequestOptions): Promise<Invoice>;
    invoice(invoiceId: string, options?: RequestOptions): Promise<Invoice>;
    /** The price catalog (optionally one model's prices). */
    prices(params?: PricesParams, options?: RequestOptions): Promise<Price[]>;
    /** Buy credits: opens a Stripe Checkout Session (`checkout_url`); credits are added when
     * Stripe reports the payment. Retries keep one `Idempotency-Key`, so one session is opened. */
    createTopUp(body: TopUpCreate, options?: RequestOptions): Promise<TopUp>;
    /** The organization's top-ups, newest first: `await` for the first page, `for await` for all. */
    topUps(params?: ListParams, options?: RequestOptions): PagePromise<TopUp>;
    topUp(topUpId: string, options?: RequestOptions): Promise<TopUp>;
}
/** Spend caps of the organization, a project or an API key. `set*` sets or replaces the cap
 * (`{ limit_micros }`, micro-USD); `clear*` removes it; each answers the budget. */
export declare class Budgets {
    private readonly client;
    constructor(client: APIClient);
    organization(options?: RequestOptions): Promise<Budget>;
    setOrganization(body: BudgetUpdate, options?: RequestOptions): Promise<Budget>;
    clearOrganization(options?: RequestOptions): Promise<Budget>;
    project(projectId: string, options?: RequestOptions): Promise<Budget>;
    setProject(projectId: string, body: BudgetUpdate, options?: RequestOptions): Promise<Budget>;
    clearProject(projectId: string, options?: RequestOptions): Promise<Budget>;
    key(projectId: string, keyId: string, options?: RequestOptions): Promise<Budget>;
    setKey(projectId: string, keyId: string, body: BudgetUpdate, options?: RequestOptions): Promise<Budget>;
    clearKey(projectId: string, keyId: string, options?: RequestOptions): Promise<Budget>;
}
/** Single-use tickets for `GET /v1/chat/ws?ticket=` (for clients that cannot set headers). */
export declare class WsTickets {
    private readonly client;
    constructor(client: APIClient);
    create(options?: RequestOptions): Promise<WsTicket>;
}
export {};
