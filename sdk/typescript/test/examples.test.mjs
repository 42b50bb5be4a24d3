// The examples run as written in the README, against the live server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startServer } from "./server.mjs";

const examples = fileURLToPath(new URL("../examples/", import.meta.url));
let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function run(example, key) {
  const { stdout } = await promisify(execFile)(process.execPath, [examples + example], {
    env: { ...process.env, STARFIRE_API_KEY: key, STARFIRE_BASE_URL: server.baseURL },
    timeout: 300_000,
  });
  return stdout;
}

test("the quickstart streams an answer", async () => {
  assert.ok((await run("quickstart.mjs", server.api_key)).trim());
});

test("the keys example creates a key, uses it, reads its usage and revokes it", async () => {
  const out = await run("keys.mjs", server.admin_key);
  assert.match(out, /created key_/);
  // The example samples (the default temperature), so its answer may end before 5 tokens: the
  // usage read back counts exactly the tokens the answer reported.
  const answered = out.match(/answer: [\s\S]*? \((\d+) tokens\)\n/);
  assert.ok(answered, out);
  assert.match(out, new RegExp(`usage: 1 requests, \\d+ in, ${answered[1]} out`));
  assert.match(out, /revoked key_/);
});

test("the README shows the quickstart as written", () => {
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
  assert.ok(readme.includes(readFileSync(examples + "quickstart.mjs", "utf8")));
});
