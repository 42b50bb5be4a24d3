/**
 * Resources: `client.chat.completions`, `client.chat.ws()`, `client.models`, `client.projects`,
 * `client.projects.apiKeys`, `client.deployments`, `client.usage`, `client.costs`,
 * `client.credits`, `client.billing`, `client.budgets`. Paths, bodies and answers are the generated spec types.
 */

import type { APIClient, RequestOptions } from "./core.js";
import type { components, operations } from "./generated/openapi.js";
import { paginate, type PagePromise } from "./pagination.js";
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

export class ChatCompletions {
  constructor(private readonly client: APIClient) {}

  /** Creates a chat completion; with `stream: true`, an async iterator of typed chunks. */
  create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: RequestOptions): Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParams & { stream: true }, options?: RequestOptions): Promise<Stream<ChatCompletionChunk>>;
  async create(
    params: ChatCompletionRequest,
    options: RequestOptions = {},
  ): Promise<ChatCompletion | Stream<ChatCompletionChunk>> {
    if (!params.stream) {
      return this.client.json<ChatCompletion>({ ...options, method: "POST", path: "/v1/chat/completions", body: params });
    }
    const controller = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
    const response = await this.client.send({
      ...options,
      signal,
      method: "POST",
      path: "/v1/chat/completions",
      body: params,
      stream: true,
    });
    return new Stream<ChatCompletionChunk>(response, controller);
  }
}

export class Chat {
  readonly completions: ChatCompletions;

  constructor(private readonly client: APIClient) {
    this.completions = new ChatCompletions(client);
  }

  /** Opens a chat WebSocket (`GET /v1/chat/ws`); close it when done. */
  ws(options?: ChatSocketOptions): Promise<ChatSocket> {
    return ChatSocket.connect(this.client, options);
  }
}

export class Models {
  constructor(private readonly client: APIClient) {}

  async list(options?: RequestOptions): Promise<Model[]> {
    const list = await this.client.json<Schemas["ModelList"]>({ ...options, method: "GET", path: "/v1/models" });
    return list.data;
  }

  retrieve(model: string, options?: RequestOptions): Promise<Model> {
    return this.client.json({ ...options, method: "GET", path: "/v1/models/{model}", params: { model } });
  }
}

/** A project's API keys. */
export class ApiKeys {
  constructor(private readonly client: APIClient) {}

  /** Creates a key; `value` of the answer is the only time the secret is shown. */
  create(projectId: string, body: ApiKeyCreate, options?: RequestOptions): Promise<CreatedApiKey> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/projects/{project_id}/api_keys",
      params: { project_id: projectId },
      body,
    });
  }

  /** The project's live keys: `await` for the first page, `for await` for all of them. */
  list(projectId: string, params: ListParams = {}, options?: RequestOptions): PagePromise<ApiKey> {
    return paginate((after) =>
      this.client.json<Schemas["ApiKeyList"]>({
        ...options,
        method: "GET",
        path: "/v1/organization/projects/{project_id}/api_keys",
        params: { project_id: projectId },
        query: { ...params, after },
      }),
    );
  }

  retrieve(projectId: string, keyId: string, options?: RequestOptions): Promise<ApiKey> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/organization/projects/{project_id}/api_keys/{key_id}",
      params: { project_id: projectId, key_id: keyId },
    });
  }

  update(projectId: string, keyId: string, body: ApiKeyUpdate, options?: RequestOptions): Promise<ApiKey> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/projects/{project_id}/api_keys/{key_id}",
      params: { project_id: projectId, key_id: keyId },
      body,
    });
  }

  /** Revokes a key: it stops working at once. */
  delete(projectId: string, keyId: string, options?: RequestOptions): Promise<DeletedObject> {
    return this.client.json({
      ...options,
      method: "DELETE",
      path: "/v1/organization/projects/{project_id}/api_keys/{key_id}",
      params: { project_id: projectId, key_id: keyId },
    });
  }
}

export class Projects {
  readonly apiKeys: ApiKeys;

  constructor(private readonly client: APIClient) {
    this.apiKeys = new ApiKeys(client);
  }

  create(body: ProjectCreate, options?: RequestOptions): Promise<Project> {
    return this.client.json({ ...options, method: "POST", path: "/v1/organization/projects", body });
  }

  /** The organization's projects: `await` for the first page, `for await` for all of them. */
  list(params: ListParams & { include_archived?: boolean } = {}, options?: RequestOptions): PagePromise<Project> {
    return paginate((after) =>
      this.client.json<Schemas["ProjectList"]>({
        ...options,
        method: "GET",
        path: "/v1/organization/projects",
        query: { ...params, after },
      }),
    );
  }

  retrieve(projectId: string, options?: RequestOptions): Promise<Project> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/organization/projects/{project_id}",
      params: { project_id: projectId },
    });
  }

  update(projectId: string, body: ProjectUpdate, options?: RequestOptions): Promise<Project> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/projects/{project_id}",
      params: { project_id: projectId },
      body,
    });
  }

  archive(projectId: string, options?: RequestOptions): Promise<Project> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/projects/{project_id}/archive",
      params: { project_id: projectId },
    });
  }
}

/**
 * The organization's private deployments: replicas of a model that only its requests reach (a
 * request puts the deployment's `name` in `model`). A new deployment waits for a platform
 * operator's approval (`state` `requested`) unless the installation approves automatically.
 */
export class Deployments {
  constructor(private readonly client: APIClient) {}

  /**
   * Requests a deployment of a served `model` under `name`. Left out, the server's defaults
   * apply: `replicas` `{ min: 1, max: 1 }`, `hardware` `cpu`, the installation's
   * `kv_cache_memory`, the model's `max_model_len`, `overflow` `none` (`shared` lets the shared
   * pool answer while no replica is ready).
   */
  create(body: DeploymentCreate, options?: RequestOptions): Promise<Deployment> {
    return this.client.json({ ...options, method: "POST", path: "/v1/organization/deployments", body });
  }

  /** The organization's deployments: `await` for the first page, `for await` for all of them. */
  list(params: ListParams & { include_deleted?: boolean } = {}, options?: RequestOptions): PagePromise<Deployment> {
    return paginate((after) =>
      this.client.json<Schemas["DeploymentList"]>({
        ...options,
        method: "GET",
        path: "/v1/organization/deployments",
        query: { ...params, after },
      }),
    );
  }

  retrieve(deploymentId: string, options?: RequestOptions): Promise<Deployment> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/organization/deployments/{deployment_id}",
      params: { deployment_id: deploymentId },
    });
  }

  /** Scales a deployment to `{ replicas: { min, max } }`; a serving one goes to `scaling` until
   * the new count is ready. */
  update(deploymentId: string, body: DeploymentUpdate, options?: RequestOptions): Promise<Deployment> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/deployments/{deployment_id}",
      params: { deployment_id: deploymentId },
      body,
    });
  }

  /** Stops its replicas (reserved capacity is no longer charged); its requests get 503
   * `deployment_not_ready` until it is started again. */
  stop(deploymentId: string, options?: RequestOptions): Promise<Deployment> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/deployments/{deployment_id}/stop",
      params: { deployment_id: deploymentId },
    });
  }

  /** Starts a stopped (or failed) deployment again. */
  start(deploymentId: string, options?: RequestOptions): Promise<Deployment> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/deployments/{deployment_id}/start",
      params: { deployment_id: deploymentId },
    });
  }

  /** Deletes a deployment: it answers in state `deleting`, then becomes `deleted` (its name is
   * free again; its history and charges stay). */
  delete(deploymentId: string, options?: RequestOptions): Promise<Deployment> {
    return this.client.json({
      ...options,
      method: "DELETE",
      path: "/v1/organization/deployments/{deployment_id}",
      params: { deployment_id: deploymentId },
    });
  }

  /** The deployment's history of states, oldest first. */
  async events(deploymentId: string, options?: RequestOptions): Promise<DeploymentEvent[]> {
    const list = await this.client.json<Schemas["DeploymentEventList"]>({
      ...options,
      method: "GET",
      path: "/v1/organization/deployments/{deployment_id}/events",
      params: { deployment_id: deploymentId },
    });
    return list.data;
  }
}

/** Token usage in time buckets: `await` for the first page of buckets, `for await` for all. */
export class Usage {
  constructor(private readonly client: APIClient) {}

  completions(params: CompletionsUsageParams, options?: RequestOptions): PagePromise<CompletionsUsageBucket> {
    return paginate((page) =>
      this.client.json<Schemas["UsagePage_CompletionsUsageResult"]>({
        ...options,
        method: "GET",
        path: "/v1/organization/usage/completions",
        query: { ...params, page },
      }),
    );
  }

  embeddings(params: EmbeddingsUsageParams, options?: RequestOptions): PagePromise<EmbeddingsUsageBucket> {
    return paginate((page) =>
      this.client.json<Schemas["UsagePage_EmbeddingsUsageResult"]>({
        ...options,
        method: "GET",
        path: "/v1/organization/usage/embeddings",
        query: { ...params, page },
      }),
    );
  }
}

/** What the organization spent, per day. */
export class Costs {
  constructor(private readonly client: APIClient) {}

  list(params: CostsParams, options?: RequestOptions): PagePromise<CostBucket> {
    return paginate((page) =>
      this.client.json<Schemas["UsagePage_CostResult"]>({
        ...options,
        method: "GET",
        path: "/v1/organization/costs",
        query: { ...params, page },
      }),
    );
  }
}

/** The organization's prepaid credits and ledger. */
export class CreditsResource {
  constructor(private readonly client: APIClient) {}

  retrieve(options?: RequestOptions): Promise<Credits> {
    return this.client.json({ ...options, method: "GET", path: "/v1/organization/credits" });
  }
}

/** The organization's balance, ledger, invoices and the price catalog (amounts in micro-USD:
 * 1 USD = 1,000,000). */
export class Billing {
  constructor(private readonly client: APIClient) {}

  /** The prepaid balance: what the ledger holds, what is reserved, what is available. */
  balance(options?: RequestOptions): Promise<Balance> {
    return this.client.json({ ...options, method: "GET", path: "/v1/billing/balance" });
  }

  /** The ledger's entries, newest first: `await` for the first page, `for await` for all. */
  ledger(params: ListParams = {}, options?: RequestOptions): PagePromise<LedgerEntry> {
    return paginate((after) =>
      this.client.json<Schemas["LedgerEntryList"]>({
        ...options,
        method: "GET",
        path: "/v1/billing/ledger",
        query: { ...params, after },
      }),
    );
  }

  /** The finalized invoices: `await` for the first page, `for await` for all. */
  invoices(params: ListParams = {}, options?: RequestOptions): PagePromise<Invoice> {
    return paginate((after) =>
      this.client.json<Schemas["InvoiceList"]>({
        ...options,
        method: "GET",
        path: "/v1/billing/invoices",
        query: { ...params, after },
      }),
    );
  }

  /** The draft invoice of a month (`YYYY-MM`, UTC; default the current one). */
  upcomingInvoice(period?: string, options?: RequestOptions): Promise<Invoice> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/billing/invoices/upcoming",
      query: { period },
    });
  }

  invoice(invoiceId: string, options?: RequestOptions): Promise<Invoice> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/billing/invoices/{invoice_id}",
      params: { invoice_id: invoiceId },
    });
  }

  /** The price catalog (optionally one model's prices). */
  async prices(params: PricesParams = {}, options?: RequestOptions): Promise<Price[]> {
    const list = await this.client.json<Schemas["PriceList"]>({
      ...options,
      method: "GET",
      path: "/v1/billing/prices",
      query: { ...params },
    });
    return list.data;
  }

  /** Buy credits: opens a Stripe Checkout Session (`checkout_url`); credits are added when
   * Stripe reports the payment. Retries keep one `Idempotency-Key`, so one session is opened. */
  createTopUp(body: TopUpCreate, options?: RequestOptions): Promise<TopUp> {
    return this.client.json({ ...options, method: "POST", path: "/v1/billing/top_ups", body });
  }

  /** The organization's top-ups, newest first: `await` for the first page, `for await` for all. */
  topUps(params: ListParams = {}, options?: RequestOptions): PagePromise<TopUp> {
    return paginate((after) =>
      this.client.json<Schemas["TopUpList"]>({
        ...options,
        method: "GET",
        path: "/v1/billing/top_ups",
        query: { ...params, after },
      }),
    );
  }

  topUp(topUpId: string, options?: RequestOptions): Promise<TopUp> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/billing/top_ups/{top_up_id}",
      params: { top_up_id: topUpId },
    });
  }
}

/** Spend caps of the organization, a project or an API key. `set*` sets or replaces the cap
 * (`{ limit_micros }`, micro-USD); `clear*` removes it; each answers the budget. */
export class Budgets {
  constructor(private readonly client: APIClient) {}

  organization(options?: RequestOptions): Promise<Budget> {
    return this.client.json({ ...options, method: "GET", path: "/v1/organization/budget" });
  }

  setOrganization(body: BudgetUpdate, options?: RequestOptions): Promise<Budget> {
    return this.client.json({ ...options, method: "POST", path: "/v1/organization/budget", body });
  }

  clearOrganization(options?: RequestOptions): Promise<Budget> {
    return this.client.json({ ...options, method: "DELETE", path: "/v1/organization/budget" });
  }

  project(projectId: string, options?: RequestOptions): Promise<Budget> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/organization/projects/{project_id}/budget",
      params: { project_id: projectId },
    });
  }

  setProject(projectId: string, body: BudgetUpdate, options?: RequestOptions): Promise<Budget> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/projects/{project_id}/budget",
      params: { project_id: projectId },
      body,
    });
  }

  clearProject(projectId: string, options?: RequestOptions): Promise<Budget> {
    return this.client.json({
      ...options,
      method: "DELETE",
      path: "/v1/organization/projects/{project_id}/budget",
      params: { project_id: projectId },
    });
  }

  key(projectId: string, keyId: string, options?: RequestOptions): Promise<Budget> {
    return this.client.json({
      ...options,
      method: "GET",
      path: "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
      params: { project_id: projectId, key_id: keyId },
    });
  }

  setKey(projectId: string, keyId: string, body: BudgetUpdate, options?: RequestOptions): Promise<Budget> {
    return this.client.json({
      ...options,
      method: "POST",
      path: "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
      params: { project_id: projectId, key_id: keyId },
      body,
    });
  }

  clearKey(projectId: string, keyId: string, options?: RequestOptions): Promise<Budget> {
    return this.client.json({
      ...options,
      method: "DELETE",
      path: "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
      params: { project_id: projectId, key_id: keyId },
    });
  }
}

/** Single-use tickets for `GET /v1/chat/ws?ticket=` (for clients that cannot set headers). */
export class WsTickets {
  constructor(private readonly client: APIClient) {}

  create(options?: RequestOptions): Promise<WsTicket> {
    return this.client.json({ ...options, method: "POST", path: "/v1/ws/tickets" });
  }
}
