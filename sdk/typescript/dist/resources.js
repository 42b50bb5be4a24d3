/**
 * Resources: `client.chat.completions`, `client.chat.ws()`, `client.models`, `client.projects`,
 * `client.projects.apiKeys`, `client.deployments`, `client.usage`, `client.costs`,
 * `client.credits`, `client.billing`, `client.budgets`. Paths, bodies and answers are the generated spec types.
 */
import { paginate } from "./pagination.js";
import { Stream } from "./streaming.js";
import { ChatSocket } from "./websocket.js";
export class ChatCompletions {
    client;
    constructor(client) {
        this.client = client;
    }
    async create(params, options = {}) {
        if (!params.stream) {
            return this.client.json({ ...options, method: "POST", path: "/v1/chat/completions", body: params });
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
        return new Stream(response, controller);
    }
}
export class Chat {
    client;
    completions;
    constructor(client) {
        this.client = client;
        this.completions = new ChatCompletions(client);
    }
    /** Opens a chat WebSocket (`GET /v1/chat/ws`); close it when done. */
    ws(options) {
        return ChatSocket.connect(this.client, options);
    }
}
export class Models {
    client;
    constructor(client) {
        this.client = client;
    }
    async list(options) {
        const list = await this.client.json({ ...options, method: "GET", path: "/v1/models" });
        return list.data;
    }
    retrieve(model, options) {
        return this.client.json({ ...options, method: "GET", path: "/v1/models/{model}", params: { model } });
    }
}
/** A project's API keys. */
export class ApiKeys {
    client;
    constructor(client) {
        this.client = client;
    }
    /** Creates a key; `value` of the answer is the only time the secret is shown. */
    create(projectId, body, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/projects/{project_id}/api_keys",
            params: { project_id: projectId },
            body,
        });
    }
    /** The project's live keys: `await` for the first page, `for await` for all of them. */
    list(projectId, params = {}, options) {
        return paginate((after) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/projects/{project_id}/api_keys",
            params: { project_id: projectId },
            query: { ...params, after },
        }));
    }
    retrieve(projectId, keyId, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/projects/{project_id}/api_keys/{key_id}",
            params: { project_id: projectId, key_id: keyId },
        });
    }
    update(projectId, keyId, body, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/projects/{project_id}/api_keys/{key_id}",
            params: { project_id: projectId, key_id: keyId },
            body,
        });
    }
    /** Revokes a key: it stops working at once. */
    delete(projectId, keyId, options) {
        return this.client.json({
            ...options,
            method: "DELETE",
            path: "/v1/organization/projects/{project_id}/api_keys/{key_id}",
            params: { project_id: projectId, key_id: keyId },
        });
    }
}
export class Projects {
    client;
    apiKeys;
    constructor(client) {
        this.client = client;
        this.apiKeys = new ApiKeys(client);
    }
    create(body, options) {
        return this.client.json({ ...options, method: "POST", path: "/v1/organization/projects", body });
    }
    /** The organization's projects: `await` for the first page, `for await` for all of them. */
    list(params = {}, options) {
        return paginate((after) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/projects",
            query: { ...params, after },
        }));
    }
    retrieve(projectId, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/projects/{project_id}",
            params: { project_id: projectId },
        });
    }
    update(projectId, body, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/projects/{project_id}",
            params: { project_id: projectId },
            body,
        });
    }
    archive(projectId, options) {
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
    client;
    constructor(client) {
        this.client = client;
    }
    /**
     * Requests a deployment of a served `model` under `name`. Left out, the server's defaults
     * apply: `replicas` `{ min: 1, max: 1 }`, `hardware` `cpu`, the installation's
     * `kv_cache_memory`, the model's `max_model_len`, `overflow` `none` (`shared` lets the shared
     * pool answer while no replica is ready).
     */
    create(body, options) {
        return this.client.json({ ...options, method: "POST", path: "/v1/organization/deployments", body });
    }
    /** The organization's deployments: `await` for the first page, `for await` for all of them. */
    list(params = {}, options) {
        return paginate((after) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/deployments",
            query: { ...params, after },
        }));
    }
    retrieve(deploymentId, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/deployments/{deployment_id}",
            params: { deployment_id: deploymentId },
        });
    }
    /** Scales a deployment to `{ replicas: { min, max } }`; a serving one goes to `scaling` until
     * the new count is ready. */
    update(deploymentId, body, options) {
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
    stop(deploymentId, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/deployments/{deployment_id}/stop",
            params: { deployment_id: deploymentId },
        });
    }
    /** Starts a stopped (or failed) deployment again. */
    start(deploymentId, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/deployments/{deployment_id}/start",
            params: { deployment_id: deploymentId },
        });
    }
    /** Deletes a deployment: it answers in state `deleting`, then becomes `deleted` (its name is
     * free again; its history and charges stay). */
    delete(deploymentId, options) {
        return this.client.json({
            ...options,
            method: "DELETE",
            path: "/v1/organization/deployments/{deployment_id}",
            params: { deployment_id: deploymentId },
        });
    }
    /** The deployment's history of states, oldest first. */
    async events(deploymentId, options) {
        const list = await this.client.json({
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
    client;
    constructor(client) {
        this.client = client;
    }
    completions(params, options) {
        return paginate((page) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/usage/completions",
            query: { ...params, page },
        }));
    }
    embeddings(params, options) {
        return paginate((page) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/usage/embeddings",
            query: { ...params, page },
        }));
    }
}
/** What the organization spent, per day. */
export class Costs {
    client;
    constructor(client) {
        this.client = client;
    }
    list(params, options) {
        return paginate((page) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/costs",
            query: { ...params, page },
        }));
    }
}
/** The organization's prepaid credits and ledger. */
export class CreditsResource {
    client;
    constructor(client) {
        this.client = client;
    }
    retrieve(options) {
        return this.client.json({ ...options, method: "GET", path: "/v1/organization/credits" });
    }
}
/** The organization's balance, ledger, invoices and the price catalog (amounts in micro-USD:
 * 1 USD = 1,000,000). */
export class Billing {
    client;
    constructor(client) {
        this.client = client;
    }
    /** The prepaid balance: what the ledger holds, what is reserved, what is available. */
    balance(options) {
        return this.client.json({ ...options, method: "GET", path: "/v1/billing/balance" });
    }
    /** The ledger's entries, newest first: `await` for the first page, `for await` for all. */
    ledger(params = {}, options) {
        return paginate((after) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/billing/ledger",
            query: { ...params, after },
        }));
    }
    /** The finalized invoices: `await` for the first page, `for await` for all. */
    invoices(params = {}, options) {
        return paginate((after) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/billing/invoices",
            query: { ...params, after },
        }));
    }
    /** The draft invoice of a month (`YYYY-MM`, UTC; default the current one). */
    upcomingInvoice(period, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/billing/invoices/upcoming",
            query: { period },
        });
    }
    invoice(invoiceId, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/billing/invoices/{invoice_id}",
            params: { invoice_id: invoiceId },
        });
    }
    /** The price catalog (optionally one model's prices). */
    async prices(params = {}, options) {
        const list = await this.client.json({
            ...options,
            method: "GET",
            path: "/v1/billing/prices",
            query: { ...params },
        });
        return list.data;
    }
    /** Buy credits: opens a Stripe Checkout Session (`checkout_url`); credits are added when
     * Stripe reports the payment. Retries keep one `Idempotency-Key`, so one session is opened. */
    createTopUp(body, options) {
        return this.client.json({ ...options, method: "POST", path: "/v1/billing/top_ups", body });
    }
    /** The organization's top-ups, newest first: `await` for the first page, `for await` for all. */
    topUps(params = {}, options) {
        return paginate((after) => this.client.json({
            ...options,
            method: "GET",
            path: "/v1/billing/top_ups",
            query: { ...params, after },
        }));
    }
    topUp(topUpId, options) {
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
    client;
    constructor(client) {
        this.client = client;
    }
    organization(options) {
        return this.client.json({ ...options, method: "GET", path: "/v1/organization/budget" });
    }
    setOrganization(body, options) {
        return this.client.json({ ...options, method: "POST", path: "/v1/organization/budget", body });
    }
    clearOrganization(options) {
        return this.client.json({ ...options, method: "DELETE", path: "/v1/organization/budget" });
    }
    project(projectId, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/projects/{project_id}/budget",
            params: { project_id: projectId },
        });
    }
    setProject(projectId, body, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/projects/{project_id}/budget",
            params: { project_id: projectId },
            body,
        });
    }
    clearProject(projectId, options) {
        return this.client.json({
            ...options,
            method: "DELETE",
            path: "/v1/organization/projects/{project_id}/budget",
            params: { project_id: projectId },
        });
    }
    key(projectId, keyId, options) {
        return this.client.json({
            ...options,
            method: "GET",
            path: "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
            params: { project_id: projectId, key_id: keyId },
        });
    }
    setKey(projectId, keyId, body, options) {
        return this.client.json({
            ...options,
            method: "POST",
            path: "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget",
            params: { project_id: projectId, key_id: keyId },
            body,
        });
    }
    clearKey(projectId, keyId, options) {
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
    client;
    constructor(client) {
        this.client = client;
    }
    create(options) {
        return this.client.json({ ...options, method: "POST", path: "/v1/ws/tickets" });
    }
}
