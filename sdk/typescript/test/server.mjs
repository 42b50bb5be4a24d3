// Starts a real `starfire serve` (the binary in STARFIRE_BIN) on a loopback port with a temporary
// SQLite database and the default model, bootstrapped with `starfire admin bootstrap`.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

export const MODEL = "smollm2-135m-instruct";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the server; resolves `{ baseURL, api_key, admin_key, ..., stop() }`. */
export async function startServer() {
  const binary = process.env.STARFIRE_BIN;
  if (!binary) throw new Error("STARFIRE_BIN must name the starfire binary (scripts/test-sdks sets it)");
  const home = mkdtempSync(join(tmpdir(), "starfire-sdk-ts-"));
  const port = await freePort();
  const env = {
    ...process.env,
    STARFIRE_HOME: home,
    STARFIRE_DATABASE_URL: `sqlite://${home}/starfire.db`,
    STARFIRE_LISTEN: `127.0.0.1:${port}`,
    STARFIRE_MODEL_PATH:
      process.env.STARFIRE_MODEL_PATH ?? join(homedir(), ".cache/starfire/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    STARFIRE_LOG: "warn",
  };
  delete env.STARFIRE_CONFIG;
  const boot = execFileSync(binary, ["admin", "bootstrap", "--email", "owner@example.com", "--tenant", "SDK tests"], {
    env: { ...env, STARFIRE_BOOTSTRAP_PASSWORD: "sdk-test-password-1" },
    encoding: "utf8",
  });
  const creds = JSON.parse(boot);
  const logPath = join(home, "serve.log");
  const log = openSync(logPath, "w");
  const proc = spawn(binary, ["serve"], { env, stdio: ["ignore", log, log] });
  let exited = false;
  proc.once("exit", () => (exited = true));
  const baseURL = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`starfire serve exited: ${readFileSync(logPath, "utf8").slice(-2000)}`);
    try {
      if ((await fetch(`${baseURL}/healthz`, { signal: AbortSignal.timeout(1000) })).status === 200) break;
    } catch {
      // Not up yet.
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error("starfire serve did not come up in 60 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    ...creds,
    baseURL,
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => proc.once("exit", resolve));
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await gone;
        clearTimeout(timer);
      }
      closeSync(log);
    },
  };
}
