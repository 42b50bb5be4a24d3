// A tiny scripted HTTP server: each request takes the next scripted answer (or is forwarded to a
// real server once the script is used up), and every request is recorded.
import { createServer } from "node:http";

/**
 * @param {Array<{status: number, body?: string, headers?: Record<string,string>, delay?: number, cutAfter?: number}>} script
 * @param {string | undefined} upstream
 */
export async function fakeServer(script, upstream) {
  const seen = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    seen.push({ method: req.method, path: req.url, headers: req.headers, body: body.toString() });
    const answer = script.shift();
    if (answer) {
      if (answer.delay) await new Promise((resolve) => setTimeout(resolve, answer.delay));
      const text = answer.body ?? "";
      if (answer.cutAfter !== undefined) {
        // A stream that breaks: send part of the body, then drop the connection.
        res.writeHead(answer.status, { ...answer.headers });
        res.write(text.slice(0, answer.cutAfter));
        setTimeout(() => res.socket.destroy(), 50);
        return;
      }
      res.writeHead(answer.status, { "content-length": Buffer.byteLength(text), ...answer.headers });
      res.end(text);
      return;
    }
    if (!upstream) {
      res.writeHead(500).end("script used up");
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    delete headers["content-length"];
    const up = await fetch(upstream + req.url, {
      method: req.method,
      headers,
      body: body.length ? body : undefined,
    });
    const upHeaders = {};
    up.headers.forEach((value, name) => {
      if (name !== "content-length" && name !== "transfer-encoding" && name !== "content-encoding") upHeaders[name] = value;
    });
    res.writeHead(up.status, upHeaders);
    if (up.body) for await (const chunk of up.body) res.write(chunk);
    res.end();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}
