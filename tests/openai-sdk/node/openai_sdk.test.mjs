// The official OpenAI Node SDK against a running `starfire serve`.
//
// starfire/tests/integration/openai_sdk.rs starts the server and runs `node --test` here with
// OPENAI_BASE_URL (.../v1), OPENAI_API_KEY (an inference key) and STARFIRE_QUEUE_TOKEN_LIMIT
// (the server's per-organization limit on waiting prompt tokens, so a longer prompt gets 429).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

const baseURL = process.env.OPENAI_BASE_URL;
const apiKey = process.env.OPENAI_API_KEY;
const queueTokenLimit = Number(process.env.STARFIRE_QUEUE_TOKEN_LIMIT);
assert.ok(baseURL && apiKey && queueTokenLimit > 0, 'run through starfire/tests/integration/openai_sdk.rs');

const MODEL = 'smollm2-135m-instruct';
// Its greedy answer runs past 24 tokens, so max_tokens ends it ('length') in the tests below.
const PLANETS = [{ role: 'user', content: 'List the planets of the solar system.' }];

// No retries: a 429 must reach the test as RateLimitError, not be retried away.
const client = (key = apiKey) => new OpenAI({ baseURL, apiKey: key, maxRetries: 0, timeout: 120_000 });

test('models list and retrieve', async () => {
  const ids = [];
  for await (const model of client().models.list()) ids.push(model.id);
  assert.ok(ids.includes(MODEL), JSON.stringify(ids));
  const model = await client().models.retrieve(MODEL);
  assert.equal(model.id, MODEL);
  assert.equal(model.object, 'model');
});

test('chat: greedy, then the same streamed with usage last', async () => {
  const c = client();
  const full = await c.chat.completions.create({ model: MODEL, messages: PLANETS, max_tokens: 16, temperature: 0 });
  assert.equal(full.object, 'chat.completion');
  assert.equal(full.model, MODEL);
  assert.equal(full.choices[0].message.role, 'assistant');
  assert.equal(full.choices[0].finish_reason, 'length');
  assert.equal(full.usage.completion_tokens, 16);
  assert.equal(full.usage.total_tokens, full.usage.prompt_tokens + 16);

  const stream = await c.chat.completions.create({
    model: MODEL,
    messages: PLANETS,
    max_tokens: 16,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.every((ch) => ch.object === 'chat.completion.chunk' && ch.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 16);
  assert.equal(last.usage.prompt_tokens, full.usage.prompt_tokens);
  const body = chunks.slice(0, -1);
  assert.equal(body.map((ch) => ch.choices[0].delta.content ?? '').join(''), full.choices[0].message.content);
  assert.deepEqual(
    body.map((ch) => ch.choices[0].finish_reason).filter(Boolean),
    ['length'],
  );
});

test('chat: n=2 with logprobs and top_logprobs', async () => {
  const r = await client().chat.completions.create({
    model: MODEL,
    messages: PLANETS,
    max_tokens: 8,
    n: 2,
    temperature: 1,
    seed: 5,
    logprobs: true,
    top_logprobs: 2,
  });
  assert.deepEqual(r.choices.map((ch) => ch.index), [0, 1]);
  let tokens = 0;
  for (const ch of r.choices) {
    const content = ch.logprobs.content;
    assert.equal(content.length, 8);
    tokens += content.length;
    assert.equal(content.map((t) => t.token).join(''), ch.message.content);
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    }
  }
  assert.equal(r.usage.completion_tokens, tokens);
});

test('chat: n=2 streamed finishes both choices', async () => {
  const stream = await client().chat.completions.create({
    model: MODEL,
    messages: PLANETS,
    max_tokens: 6,
    n: 2,
    temperature: 1,
    seed: 9,
    stream: true,
  });
  const finished = {};
  for await (const chunk of stream) {
    for (const ch of chunk.choices) if (ch.finish_reason) finished[ch.index] = ch.finish_reason;
  }
  assert.deepEqual(finished, { 0: 'length', 1: 'length' });
});

test('chat: stop ends before the stop string', async () => {
  const c = client();
  const full = await c.chat.completions.create({ model: MODEL, messages: PLANETS, max_tokens: 24, temperature: 0 });
  const text = full.choices[0].message.content;
  const words = text.split(/\s+/).filter(Boolean);
  assert.ok(words.length > 3, text);
  const stop = words[2];
  const cut = await c.chat.completions.create({ model: MODEL, messages: PLANETS, max_tokens: 24, temperature: 0, stop });
  assert.equal(cut.choices[0].finish_reason, 'stop');
  assert.equal(cut.choices[0].message.content, text.slice(0, text.indexOf(stop)));
});

test('completions: logprobs, and the same streamed', async () => {
  const c = client();
  const prompt = 'The capital of France is';
  const r = await c.completions.create({ model: MODEL, prompt, max_tokens: 8, temperature: 0, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  const choice = r.choices[0];
  assert.equal(choice.logprobs.tokens.length, 8);
  assert.equal(choice.logprobs.tokens.join(''), choice.text);
  assert.equal(r.usage.completion_tokens, 8);
  const stream = await c.completions.create({
    model: MODEL,
    prompt,
    max_tokens: 8,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.completion_tokens, 8);
  assert.equal(chunks.slice(0, -1).map((ch) => ch.choices[0].text).join(''), choice.text);
});

test('embeddings: the default (base64, decoded by the SDK) equals float', async () => {
  const c = client();
  const input = ['The sky is blue.', 'Rust is a programming language.'];
  const byDefault = await c.embeddings.create({ model: MODEL, input });
  const floats = await c.embeddings.create({ model: MODEL, input, encoding_format: 'float' });
  assert.equal(byDefault.data.length, 2);
  for (let i = 0; i < 2; i++) {
    const a = byDefault.data[i].embedding;
    const b = floats.data[i].embedding;
    assert.equal(a.length, b.length);
    assert.ok(a.length > 100);
    const norm = Math.sqrt(b.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
    assert.ok(a.every((x, j) => Math.abs(x - b[j]) < 1e-6));
  }
});

test('errors map to the SDK exception types', async () => {
  await assert.rejects(client('sf-not-a-real-key').models.list(), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
    assert.equal(e.status, 401);
    return true;
  });
  await assert.rejects(
    client().chat.completions.create({ model: 'no-such-model', messages: PLANETS, max_tokens: 1 }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, String(e));
      assert.equal(e.code, 'model_not_found');
      return true;
    },
  );
  await assert.rejects(
    client().chat.completions.create({ model: MODEL, messages: PLANETS, temperature: 5 }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.param, 'temperature');
      return true;
    },
  );
  // One prompt longer than the organization's whole waiting-token allowance.
  const prompt = Array(queueTokenLimit + 16).fill('river').join(' ');
  await assert.rejects(client().completions.create({ model: MODEL, prompt, max_tokens: 1 }), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
    assert.equal(e.headers.get('retry-after'), '1');
    return true;
  });
});
