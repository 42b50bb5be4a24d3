// The core (configuration, retries, typed errors, streams) against scripted fake servers.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  APIConnectionError,
  APIStreamError,
  APITimeoutError,
  AuthenticationError,
  InsufficientQuotaError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  Starfire,
  StarfireError,
  UnprocessableEntityError,
} from "starfire";

import { fakeServer } from "./fake.mjs";

const json = (value, headers = {}) => ({
  body: JSON.stringify(value),
  headers: { "content-type": "application/json", ...headers },
});
const error = (code, type = "invalid_request_error") =>
  json({ error: { message: `nope: ${code}`, type, param: null, code } }, { "x-request-id": "req_fake" });
const COMPLETION = { id: "chatcmpl-1", object: "chat.completion", created: 1, model: "m", choices: [], usage: {} };
const HELLO = { model: "m", messages: [{ role: "user", content: "hi" }] };

async function withFake(script, run) {
  const fake = await fakeServer(script);
  try {
    return await run(fake, new Starfire({ apiKey: "sf-test", baseURL: fake.url }));
  } finally {
    await fake.close();
  }
}

test("the key and base URL come from the environment, else a clear error", () => {
  const saved = { ...process.env };
  try {
    process.env.STARFIRE_API_KEY = "sf-env";
    process.env.STARFIRE_BASE_URL = "http://example.invalid:1/";
    const client = new Starfire();
    assert.equal(client.apiKey, "sf-env");
    assert.equal(client.baseURL, "http://example.invalid:1");
    delete process.env.STARFIRE_API_KEY;
    assert.throws(() => new Starfire(), StarfireError);
    assert.throws(() => new Starfire({ apiKey: "k", maxRetries: -1 }), /maxRetries/);
  } finally {
    process.env = saved;
  }
});

test("a 429 with Retry-After is retried with the same Idempotency-Key", async () => {
  await withFake([{ status: 429, ...error("rate_limit_exceeded", "rate_limit_error"), headers: { "retry-after": "0.2" } }, { status: 200, ...json(COMPLETION) }], async (fake, client) => {
    const started = Date.now();
    const completion = await client.chat.completions.create(HELLO);
    assert.equal(completion.id, "chatcmpl-1");
    assert.ok(Date.now() - started >= 190, "waited for Retry-After");
    assert.equal(fake.seen.length, 2);
    const keys = new Set(fake.seen.map((s) => s.headers["idempotency-key"]));
    assert.equal(keys.size, 1);
    assert.match([...keys][0], /^sf-ts-/);
    assert.equal(fake.seen[0].headers.authorization, "Bearer sf-test");
  });
});

test("a given Idempotency-Key is sent as is", async () => {
  await withFake([{ status: 200, ...json({ id: "proj_1" }) }], async (fake, client) => {
    await client.projects.create({ name: "p" }, { idempotencyKey: "mine-1" });
    assert.equal(fake.seen[0].headers["idempotency-key"], "mine-1");
  });
});

test("5xx, 408 and 409 are retried until the retries run out", async () => {
  await withFake(
    [{ status: 503, ...error("overloaded", "server_error") }, { status: 408, ...error("timeout") }, { status: 500, ...error("boom", "server_error") }],
    async (fake, client) => {
      await assert.rejects(client.models.list(), (err) => {
        assert.ok(err instanceof InternalServerError);
        assert.equal(err.status, 500);
        assert.equal(err.requestId, "req_fake");
        assert.equal(err.code, "boom");
        return true;
      });
      assert.equal(fake.seen.length, 3);
    },
  );
});

test("a Retry-After longer than a minute is not waited for", async () => {
  await withFake([{ status: 429, ...error("rate_limit_exceeded"), headers: { "retry-after": "3600" } }], async (fake, client) => {
    await assert.rejects(client.models.list(), RateLimitError);
    assert.equal(fake.seen.length, 1);
  });
});

test("insufficient_quota is never retried", async () => {
  await withFake([{ status: 429, ...error("insufficient_quota", "insufficient_quota") }], async (fake, client) => {
    await assert.rejects(client.chat.completions.create(HELLO), InsufficientQuotaError);
    assert.equal(fake.seen.length, 1);
  });
});

test("each status has its typed error", async () => {
  const cases = [
    [401, AuthenticationError],
    [403, PermissionDeniedError],
    [404, NotFoundError],
    [422, UnprocessableEntityError],
  ];
  for (const [status, cls] of cases) {
    await withFake([{ status, ...error("x") }], async (_fake, client) => {
      await assert.rejects(client.models.list(), (err) => err instanceof cls && err.status === status && err.requestId === "req_fake");
    });
  }
});

test("a timeout throws APITimeoutError after the retries", async () => {
  await withFake([{ status: 200, ...json([]), delay: 500 }, { status: 200, ...json([]), delay: 500 }], async (fake) => {
    const client = new Starfire({ apiKey: "k", baseURL: fake.url, timeout: 100, maxRetries: 1 });
    await assert.rejects(client.models.list(), APITimeoutError);
    assert.equal(fake.seen.length, 2);
  });
});

test("a refused connection throws APIConnectionError", async () => {
  const fake = await fakeServer([]);
  await fake.close();
  const client = new Starfire({ apiKey: "k", baseURL: fake.url, maxRetries: 0 });
  await assert.rejects(client.models.list(), APIConnectionError);
});

const sse = (...events) => events.map((e) => `data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`).join("");
const chunk = (content, finish = null) => ({
  id: "c",
  object: "chat.completion.chunk",
  created: 1,
  model: "m",
  choices: [{ index: 0, delta: { content }, finish_reason: finish }],
});

test("a stream yields typed chunks until [DONE]", async () => {
  const body = `: keep-alive\n\n${sse(chunk("Hel"), chunk("lo", "stop"))}data: [DONE]\n\n`;
  await withFake([{ status: 200, body, headers: { "content-type": "text/event-stream", "x-request-id": "req_s" } }], async (fake, client) => {
    const stream = await client.chat.completions.create({ ...HELLO, stream: true });
    assert.equal(stream.requestId, "req_s");
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.deepEqual(chunks.map((c) => c.choices[0].delta.content), ["Hel", "lo"]);
    assert.equal(fake.seen[0].headers.accept, "text/event-stream");
    assert.equal(JSON.parse(fake.seen[0].body).stream, true);
  });
});

test("an error event in a stream throws APIStreamError", async () => {
  const body = sse(chunk("a"), { error: { message: "engine failed", type: "server_error", code: "engine_error" } });
  await withFake([{ status: 200, body, headers: { "content-type": "text/event-stream" } }], async (_fake, client) => {
    const stream = await client.chat.completions.create({ ...HELLO, stream: true });
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const c of stream) seen.push(c);
      })(),
      (err) => err instanceof APIStreamError && err.code === "engine_error",
    );
    assert.equal(seen.length, 1);
  });
});

test("a stream that breaks after output is not retried", async () => {
  const body = sse(chunk("partial")) + "data: {\"id\"";
  await withFake([{ status: 200, body, headers: { "content-type": "text/event-stream" }, cutAfter: body.length }, { status: 200, ...json(COMPLETION) }], async (fake, client) => {
    const stream = await client.chat.completions.create({ ...HELLO, stream: true });
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const c of stream) seen.push(c);
      })(),
      APIConnectionError,
    );
    assert.equal(seen.length, 1);
    assert.equal(fake.seen.length, 1);
  });
});

test("a stream refused with 429 before any output is retried", async () => {
  const body = `${sse(chunk("ok", "stop"))}data: [DONE]\n\n`;
  await withFake([{ status: 429, ...error("rate_limit_exceeded"), headers: { "retry-after": "0" } }, { status: 200, body, headers: { "content-type": "text/event-stream" } }], async (fake, client) => {
    const stream = await client.chat.completions.create({ ...HELLO, stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks.length, 1);
    assert.equal(fake.seen.length, 2);
  });
});

test("lists are walked across pages", async () => {
  const page = (ids, hasMore) => ({ status: 200, ...json({ object: "list", data: ids.map((id) => ({ id })), first_id: ids[0], last_id: ids.at(-1), has_more: hasMore }) });
  await withFake([page(["a", "b"], true), page(["c"], false), page(["a", "b"], true)], async (fake, client) => {
    const ids = [];
    for await (const key of client.projects.apiKeys.list("proj_1", { limit: 2 })) ids.push(key.id);
    assert.deepEqual(ids, ["a", "b", "c"]);
    assert.equal(fake.seen[1].path, "/v1/organization/projects/proj_1/api_keys?limit=2&after=b");
    const first = await client.projects.apiKeys.list("proj_1", { limit: 2 });
    assert.deepEqual(first.data.map((k) => k.id), ["a", "b"]);
    assert.ok(first.hasNextPage());
  });
});

const DEPLOYMENT = {
  id: "dep_1",
  object: "deployment",
  name: "my-llm",
  model: "m",
  replicas: { min: 1, max: 2 },
  target_replicas: 1,
  ready_replicas: 1,
  hardware: "cpu",
  kv_cache_memory: 67108864,
  max_model_len: null,
  overflow: "none",
  state: "ready",
  status_message: null,
  created_at: 1,
  updated_at: 2,
};
const deployment = (fields = {}) => ({ status: 200, ...json({ ...DEPLOYMENT, ...fields }) });

test("deployments call their routes and parse the answers", async () => {
  const events = {
    object: "list",
    data: [
      { id: "depev_1", object: "deployment.event", from_state: null, to_state: "requested", actor: "user:user_1", message: null, created_at: 1 },
      { id: "depev_2", object: "deployment.event", from_state: "requested", to_state: "provisioning", actor: "operator:ops", message: "approved", created_at: 2 },
    ],
  };
  const script = [
    { ...deployment({ state: "requested", replicas: { min: 1, max: 3 } }), status: 201 },
    deployment(),
    deployment({ state: "scaling", replicas: { min: 2, max: 3 } }),
    deployment({ state: "stopping", ready_replicas: 0 }),
    deployment({ state: "provisioning", ready_replicas: 0 }),
    { status: 200, ...json(events) },
    deployment({ state: "deleting", ready_replicas: 0 }),
  ];
  await withFake(script, async (fake, client) => {
    const created = await client.deployments.create(
      { name: "my-llm", model: "m", replicas: { min: 1, max: 3 }, max_model_len: 2048, overflow: "shared" },
      { idempotencyKey: "dep-key" },
    );
    assert.equal(created.state, "requested");
    assert.equal(created.replicas.max, 3);
    const got = await client.deployments.retrieve("dep_1");
    assert.equal(got.ready_replicas, 1);
    assert.equal(got.max_model_len, null);
    const scaled = await client.deployments.update("dep_1", { replicas: { min: 2, max: 3 } });
    assert.equal(scaled.state, "scaling");
    assert.equal((await client.deployments.stop("dep_1")).state, "stopping");
    assert.equal((await client.deployments.start("dep_1")).state, "provisioning");
    const history = await client.deployments.events("dep_1");
    assert.deepEqual(history.map((e) => [e.from_state, e.to_state, e.actor]), [
      [null, "requested", "user:user_1"],
      ["requested", "provisioning", "operator:ops"],
    ]);
    assert.equal((await client.deployments.delete("dep_1")).state, "deleting");
    assert.deepEqual(fake.seen.map((s) => [s.method, s.path]), [
      ["POST", "/v1/organization/deployments"],
      ["GET", "/v1/organization/deployments/dep_1"],
      ["POST", "/v1/organization/deployments/dep_1"],
      ["POST", "/v1/organization/deployments/dep_1/stop"],
      ["POST", "/v1/organization/deployments/dep_1/start"],
      ["GET", "/v1/organization/deployments/dep_1/events"],
      ["DELETE", "/v1/organization/deployments/dep_1"],
    ]);
    assert.deepEqual(JSON.parse(fake.seen[0].body), {
      name: "my-llm",
      model: "m",
      replicas: { min: 1, max: 3 },
      max_model_len: 2048,
      overflow: "shared",
    });
    assert.equal(fake.seen[0].headers["idempotency-key"], "dep-key");
    assert.deepEqual(JSON.parse(fake.seen[2].body), { replicas: { min: 2, max: 3 } });
    // stop and start send no body, but still one Idempotency-Key (they are POSTs).
    assert.equal(fake.seen[3].body, "");
    assert.match(fake.seen[3].headers["idempotency-key"], /^sf-ts-/);
  });
});

test("deployments are listed across pages", async () => {
  const page = (ids, hasMore) => ({
    status: 200,
    ...json({ object: "list", data: ids.map((id) => ({ ...DEPLOYMENT, id })), first_id: ids[0], last_id: ids.at(-1), has_more: hasMore }),
  });
  await withFake([page(["dep_a", "dep_b"], true), page(["dep_c"], false), page(["dep_a"], false)], async (fake, client) => {
    const ids = [];
    for await (const d of client.deployments.list({ limit: 2, include_deleted: true })) ids.push(d.id);
    assert.deepEqual(ids, ["dep_a", "dep_b", "dep_c"]);
    assert.equal(fake.seen[0].path, "/v1/organization/deployments?limit=2&include_deleted=true");
    assert.equal(fake.seen[1].path, "/v1/organization/deployments?limit=2&include_deleted=true&after=dep_b");
    const first = await client.deployments.list();
    assert.deepEqual(first.data.map((d) => d.id), ["dep_a"]);
    assert.ok(!first.hasNextPage());
    assert.equal(fake.seen[2].path, "/v1/organization/deployments");
  });
});
