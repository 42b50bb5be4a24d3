// The SDK against a live `starfire serve` (see server.mjs).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  AuthenticationError,
  ChatSocketStream,
  ConflictError,
  NotFoundError,
  RateLimitError,
  Starfire,
  ToolCallAccumulator,
  UnprocessableEntityError,
} from "starfire";

import { fakeServer } from "./fake.mjs";
import { MODEL, startServer } from "./server.mjs";

const HELLO = [{ role: "user", content: "Say hello." }];
let server;
const inference = () => new Starfire({ apiKey: server.api_key, baseURL: server.baseURL });
const admin = () => new Starfire({ apiKey: server.admin_key, baseURL: server.baseURL });

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("reads the key and base URL from the environment", async () => {
  const saved = { ...process.env };
  try {
    process.env.STARFIRE_API_KEY = server.api_key;
    process.env.STARFIRE_BASE_URL = server.baseURL;
    assert.deepEqual((await new Starfire().models.list()).map((m) => m.id), [MODEL]);
  } finally {
    process.env = saved;
  }
});

test("chat completion", async () => {
  const completion = await inference().chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 8, temperature: 0 });
  assert.equal(completion.object, "chat.completion");
  assert.ok(completion.choices[0].message.content);
  assert.equal(completion.usage.completion_tokens, 8);
});

test("a JSON schema is enforced", async () => {
  const schema = {
    type: "object",
    properties: { city: { type: "string", maxLength: 20 }, population: { type: "integer", minimum: 0, maximum: 99999999 } },
    required: ["city", "population"],
    additionalProperties: false,
  };
  const completion = await inference().chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "Describe Paris as JSON." }],
    max_tokens: 60,
    temperature: 0,
    response_format: { type: "json_schema", json_schema: { name: "city", schema } },
  });
  const city = JSON.parse(completion.choices[0].message.content);
  assert.deepEqual(Object.keys(city).sort(), ["city", "population"]);
  assert.ok(Number.isInteger(city.population) && city.population >= 0);
});

test("tool calls: whole and streamed agree, and a result continues the conversation", async () => {
  const weather = {
    type: "function",
    function: {
      name: "get_weather",
      description: "Get the weather of a city.",
      parameters: {
        type: "object",
        properties: { city: { type: "string", maxLength: 20 } },
        required: ["city"],
        additionalProperties: false,
      },
    },
  };
  const ask = {
    model: MODEL,
    messages: [{ role: "user", content: "What is the weather in Paris?" }],
    tools: [weather],
    tool_choice: "required",
    parallel_tool_calls: false,
    max_tokens: 60,
    temperature: 0,
  };
  const client = inference();
  const completion = await client.chat.completions.create(ask);
  const choice = completion.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  const calls = choice.message.tool_calls;
  assert.equal(calls[0].function.name, "get_weather");
  assert.deepEqual(Object.keys(JSON.parse(calls[0].function.arguments)), ["city"]);
  const assembled = new ToolCallAccumulator();
  for await (const chunk of await client.chat.completions.create({ ...ask, stream: true })) {
    if (chunk.choices[0]) assembled.add(chunk.choices[0].delta);
  }
  assert.deepEqual(
    assembled.calls.map((c) => c.function),
    calls.map((c) => c.function),
  );
  assert.ok(assembled.calls[0].id.startsWith("call_"));
  const answer = await client.chat.completions.create({
    ...ask,
    messages: [...ask.messages, choice.message, { role: "tool", tool_call_id: calls[0].id, content: "18 degrees" }],
    tool_choice: "none",
    max_tokens: 10,
  });
  assert.equal(typeof answer.choices[0].message.content, "string");
});

test("streamed chat completion", async () => {
  const stream = await inference().chat.completions.create({
    model: MODEL,
    messages: HELLO,
    max_tokens: 6,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.match(stream.requestId, /^req_/);
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  assert.ok(text);
  const finishes = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].finish_reason);
  assert.equal(finishes.at(-1), "length");
  assert.equal(chunks.at(-1).usage.completion_tokens, 6);
});

test("leaving a stream early closes it", async () => {
  const stream = await inference().chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 64, temperature: 0, stream: true });
  let seen = 0;
  for await (const _chunk of stream) if (++seen === 2) break;
  assert.equal(seen, 2);
  // The server is still fine for the next request.
  const completion = await inference().chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 2, temperature: 0 });
  assert.equal(completion.usage.completion_tokens, 2);
});

test("WebSocket chat with the key header: two requests on one socket", async () => {
  const socket = await inference().chat.ws();
  try {
    const first = socket.chat({ model: MODEL, messages: HELLO, max_tokens: 5, temperature: 0 });
    const second = socket.chat({ model: MODEL, messages: HELLO, max_tokens: 3, temperature: 0 });
    assert.ok(first instanceof ChatSocketStream);
    const [a, b] = await Promise.all([first.text(), second.text()]);
    assert.ok(a && b);
    const done = await first.done;
    assert.equal(done.type, "chat.done");
    assert.equal(done.finish_reason, "length");
    assert.equal(done.usage.completion_tokens, 5);
    assert.equal((await second.done).usage.completion_tokens, 3);
  } finally {
    await socket.close();
  }
});

test("WebSocket chat with a ticket, and a request error as a typed error", async () => {
  const socket = await inference().chat.ws({ useTicket: true });
  try {
    const frames = [];
    for await (const frame of socket.chat({ model: MODEL, messages: HELLO, max_tokens: 4, temperature: 0 })) frames.push(frame);
    assert.equal(frames[0].delta.role, "assistant");
    const bad = socket.chat({ model: "no-such-model", messages: HELLO });
    await assert.rejects(bad.done, (err) => err.name === "APIStreamError" && err.code === "model_not_found");
  } finally {
    await socket.close();
  }
});

test("a WebSocket with a bad key is refused with AuthenticationError", async () => {
  const client = new Starfire({ apiKey: "sf-not-a-real-key", baseURL: server.baseURL });
  await assert.rejects(client.chat.ws(), (err) => err instanceof AuthenticationError && err.status === 401 && /^req_/.test(err.requestId));
});

test("a bad key throws AuthenticationError with the request id", async () => {
  const client = new Starfire({ apiKey: "sf-not-a-real-key", baseURL: server.baseURL });
  await assert.rejects(client.models.list(), (err) => {
    assert.ok(err instanceof AuthenticationError);
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_api_key");
    assert.match(err.requestId, /^req_/);
    return true;
  });
});

test("an unknown project throws NotFoundError", async () => {
  await assert.rejects(admin().projects.retrieve("proj_doesnotexist"), NotFoundError);
});

test("a key over its rate limit throws RateLimitError", async () => {
  const control = admin();
  const project = await control.projects.create({ name: "ts rate limit" });
  const key = await control.projects.apiKeys.create(project.id, { name: "slow", limits: { rpm: 1 } });
  const client = new Starfire({ apiKey: key.value, baseURL: server.baseURL, maxRetries: 0 });
  await client.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 1, temperature: 0 });
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 1, temperature: 0 }), (err) => {
    assert.ok(err instanceof RateLimitError);
    assert.equal(err.status, 429);
    assert.equal(err.code, "rate_limit_exceeded");
    assert.match(err.requestId, /^req_/);
    assert.ok(err.headers.get("retry-after"));
    return true;
  });
});

test("a retry after 429 succeeds with the same Idempotency-Key", async () => {
  const limited = JSON.stringify({ error: { message: "slow down", type: "rate_limit_error", code: "rate_limit_exceeded" } });
  const proxy = await fakeServer([{ status: 429, body: limited, headers: { "content-type": "application/json", "retry-after": "0" } }], server.baseURL);
  try {
    const client = new Starfire({ apiKey: server.api_key, baseURL: proxy.url });
    const completion = await client.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 3, temperature: 0 });
    assert.equal(completion.usage.completion_tokens, 3);
    assert.equal(proxy.seen.length, 2);
    const keys = new Set(proxy.seen.map((s) => s.headers["idempotency-key"]));
    assert.equal(keys.size, 1);
    assert.ok([...keys][0]);
  } finally {
    await proxy.close();
  }
});

test("the gateway answers a retried create with the first object", async () => {
  const control = admin();
  const first = await control.projects.create({ name: "ts idempotent" }, { idempotencyKey: "ts-idem-1" });
  const again = await control.projects.create({ name: "ts idempotent" }, { idempotencyKey: "ts-idem-1" });
  assert.equal(again.id, first.id);
  await assert.rejects(
    control.projects.create({ name: "something else" }, { idempotencyKey: "ts-idem-1" }),
    (err) => err instanceof UnprocessableEntityError && err.param === "Idempotency-Key",
  );
});

test("a key is created, used, listed across pages, revoked; its usage is read back", async () => {
  const control = admin();
  const start = Math.floor(Date.now() / 1000) - 60;
  const project = await control.projects.create({ name: "ts key test" });
  const created = await control.projects.apiKeys.create(project.id, { name: "ci" });
  assert.match(created.value, /^sf-/);
  const fresh = new Starfire({ apiKey: created.value, baseURL: server.baseURL });
  const completion = await fresh.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 4, temperature: 0 });
  const others = [];
  for (let i = 0; i < 3; i++) others.push((await control.projects.apiKeys.create(project.id, { name: `k${i}` })).id);
  const firstPage = await control.projects.apiKeys.list(project.id, { limit: 2 });
  assert.equal(firstPage.data.length, 2);
  assert.ok(firstPage.hasNextPage());
  const all = [];
  for await (const key of control.projects.apiKeys.list(project.id, { limit: 2 })) all.push(key.id);
  assert.deepEqual(new Set(all), new Set([created.id, ...others]));

  // Usage is recorded when the request ends; read it back for this key.
  let tokens = null;
  for (let tries = 0; tries < 50 && tokens === null; tries++) {
    let input = 0;
    let output = 0;
    let requests = 0;
    for await (const bucket of control.usage.completions({ start_time: start, bucket_width: "1m", api_key_ids: [created.id], group_by: ["api_key_id"] })) {
      for (const result of bucket.results) {
        assert.equal(result.api_key_id, created.id);
        input += result.input_tokens;
        output += result.output_tokens;
        requests += result.num_model_requests;
      }
    }
    if (requests > 0) tokens = { input, output, requests };
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(tokens, { input: completion.usage.prompt_tokens, output: 4, requests: 1 });
  const costs = [];
  for await (const bucket of control.costs.list({ start_time: start - 86_400, group_by: ["project_id"] })) costs.push(...bucket.results);
  assert.ok(costs.some((c) => c.project_id === project.id && c.amount.currency === "usd"));
  const credits = await control.credits.retrieve();
  assert.equal(credits.object, "organization.credits");

  const deleted = await control.projects.apiKeys.delete(project.id, created.id);
  assert.equal(deleted.deleted, true);
  await assert.rejects(fresh.models.list(), AuthenticationError);
});

const modelRequests = (invoice) => invoice.lines.filter((l) => l.model === MODEL).reduce((n, l) => n + l.requests, 0);

test("billing: balance and ledger after a chat, prices, the upcoming invoice", async () => {
  const control = admin();
  const before = await control.billing.upcomingInvoice();
  await inference().chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 4, temperature: 0 });
  const balance = await control.billing.balance();
  assert.equal(balance.object, "billing.balance");
  assert.equal(balance.currency, "usd");
  assert.ok(["prepaid", "postpaid"].includes(balance.mode));
  const first = await control.billing.ledger({ limit: 2 });
  assert.ok(Array.isArray(first.data));
  const entries = [];
  for await (const entry of control.billing.ledger({ limit: 2 })) entries.push(entry);
  assert.ok(entries.every((e) => e.object === "billing.ledger_entry"));
  if (balance.mode === "prepaid") assert.ok(entries.some((e) => e.kind === "usage" && e.amount_micros < 0));

  const prices = await control.billing.prices();
  assert.ok(prices.some((p) => p.object === "billing.price" && p.model === MODEL));
  assert.deepEqual((await control.billing.prices({ model: MODEL })).map((p) => p.model), [MODEL]);

  // Usage is recorded when the request ends: wait for the draft to count the chat.
  let upcoming = await control.billing.upcomingInvoice();
  for (let tries = 0; tries < 50 && modelRequests(upcoming) <= modelRequests(before); tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    upcoming = await control.billing.upcomingInvoice();
  }
  assert.equal(upcoming.object, "billing.invoice");
  assert.equal(upcoming.status, "draft");
  assert.equal(upcoming.id ?? null, null);
  assert.equal(upcoming.period, new Date().toISOString().slice(0, 7));
  assert.ok(modelRequests(upcoming) > modelRequests(before));
  assert.equal((await control.billing.upcomingInvoice(upcoming.period)).period, upcoming.period);
  for await (const invoice of control.billing.invoices()) assert.equal(invoice.object, "billing.invoice");
  await assert.rejects(control.billing.invoice("inv_doesnotexist"), NotFoundError);
  await assert.rejects(control.billing.upcomingInvoice("not-a-month"), UnprocessableEntityError);
});

test("billing: top-ups are refused with ConflictError where payments are not configured", async () => {
  const control = admin();
  assert.equal((await control.billing.balance()).top_ups_available, false);
  const err = await control.billing.createTopUp({ amount_micros: 5_000_000 }).then(
    () => assert.fail("a top-up without a payment provider must be refused"),
    (e) => e,
  );
  assert.ok(err instanceof ConflictError, String(err));
  assert.match(err.message, /not configured/);
  const page = await control.billing.topUps();
  assert.deepEqual(page.data, []);
  await assert.rejects(control.billing.topUp("topup_doesnotexist"), NotFoundError);
});

test("budgets: a project budget is set, read back and cleared", async () => {
  const control = admin();
  const project = await control.projects.create({ name: "ts budget" });
  assert.equal((await control.budgets.project(project.id)).limit_micros ?? null, null);
  const set = await control.budgets.setProject(project.id, { limit_micros: 5_000_000 });
  assert.deepEqual([set.object, set.scope, set.scope_id, set.limit_micros], ["organization.budget", "project", project.id, 5_000_000]);
  const read = await control.budgets.project(project.id);
  assert.equal(read.limit_micros, 5_000_000);
  assert.equal(read.available_micros, 5_000_000);
  const cleared = await control.budgets.clearProject(project.id);
  assert.equal(cleared.limit_micros ?? null, null);
  assert.equal((await control.budgets.project(project.id)).limit_micros ?? null, null);

  const key = await control.projects.apiKeys.create(project.id, { name: "capped" });
  assert.equal((await control.budgets.setKey(project.id, key.id, { limit_micros: 7 })).limit_micros, 7);
  assert.equal((await control.budgets.key(project.id, key.id)).scope, "api_key");
  assert.equal((await control.budgets.clearKey(project.id, key.id)).limit_micros ?? null, null);
  assert.equal((await control.budgets.organization()).scope, "organization");
  assert.equal((await control.budgets.setOrganization({ limit_micros: 10 ** 12 })).limit_micros, 10 ** 12);
  assert.equal((await control.budgets.clearOrganization()).limit_micros ?? null, null);
  await assert.rejects(control.budgets.project("proj_doesnotexist"), NotFoundError);
});
