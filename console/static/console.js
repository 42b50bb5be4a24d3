// Starfire console: progressive enhancement only. Every page works without this file except the
// playground's streamed answer, which needs fetch and a readable stream.
"use strict";

// Copy buttons: <button data-copy="element-id">.
for (const button of document.querySelectorAll("button[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    const text = source ? source.textContent : "";
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  });
}

// Confirmation pages are server-side; nothing to do here for revoke.

const playground = document.getElementById("playground");
if (playground) {
  const answer = document.getElementById("answer");
  const status = document.getElementById("status");
  const stats = {
    prompt: document.getElementById("stat-prompt"),
    completion: document.getElementById("stat-completion"),
    total: document.getElementById("stat-total"),
    rate: document.getElementById("stat-rate"),
  };
  const snippets = {
    curl: document.getElementById("curl"),
    python: document.getElementById("python"),
    typescript: document.getElementById("typescript"),
  };
  const submit = playground.querySelector("button[type=submit]");

  const request = () => {
    const messages = [];
    const system = playground.elements.system.value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push({ role: "user", content: playground.elements.prompt.value });
    return {
      model: playground.elements.model.value,
      messages,
      temperature: Number(playground.elements.temperature.value),
      top_p: Number(playground.elements.top_p.value),
      max_tokens: Number(playground.elements.max_tokens.value),
      stream: true,
      stream_options: { include_usage: true },
    };
  };

  const shellQuote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  // A Python literal of a JSON value.
  const py = (v) => {
    if (v === true) return "True";
    if (v === false) return "False";
    if (v === null) return "None";
    if (Array.isArray(v)) return "[" + v.map(py).join(", ") + "]";
    if (typeof v === "object") {
      return "{" + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ": " + py(x)).join(", ") + "}";
    }
    return JSON.stringify(v);
  };
  const updateSnippet = () => {
    const body = request();
    const base = location.origin + "/v1";
    snippets.curl.textContent =
      "curl " + base + "/chat/completions \\\n" +
      "  -H \"Authorization: Bearer $STARFIRE_API_KEY\" \\\n" +
      "  -H 'Content-Type: application/json' \\\n" +
      "  -d " + shellQuote(JSON.stringify(body));
    const args = Object.entries(body)
      .map(([k, v]) => "    " + k + "=" + py(v) + ",")
      .join("\n");
    snippets.python.textContent =
      "import os\n\nfrom openai import OpenAI\n\n" +
      "client = OpenAI(base_url=" + JSON.stringify(base) + ", api_key=os.environ[\"STARFIRE_API_KEY\"])\n" +
      "stream = client.chat.completions.create(\n" + args + "\n)\n" +
      "for chunk in stream:\n" +
      "    if chunk.choices and chunk.choices[0].delta.content:\n" +
      "        print(chunk.choices[0].delta.content, end=\"\", flush=True)\n" +
      "    if chunk.usage:\n" +
      "        print(\"\\n\", chunk.usage)\n";
    snippets.typescript.textContent =
      "import OpenAI from \"openai\";\n\n" +
      "const client = new OpenAI({ baseURL: " + JSON.stringify(base) + ", apiKey: process.env.STARFIRE_API_KEY });\n" +
      "const stream = await client.chat.completions.create(" + JSON.stringify(body, null, 2) + ");\n" +
      "for await (const chunk of stream) {\n" +
      "  process.stdout.write(chunk.choices[0]?.delta?.content ?? \"\");\n" +
      "  if (chunk.usage) console.log(\"\\n\", chunk.usage);\n" +
      "}\n";
  };
  playground.addEventListener("input", updateSnippet);
  updateSnippet();

  playground.addEventListener("submit", async (event) => {
    event.preventDefault();
    answer.textContent = "";
    for (const el of Object.values(stats)) el.textContent = "…";
    status.textContent = "Generating…";
    submit.disabled = true;
    const started = performance.now();
    let firstToken = null;
    let pieces = 0;
    let usage = null;
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Authorization": "Bearer " + playground.dataset.token,
        },
        body: JSON.stringify(request()),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error((body && body.error && body.error.message) || ("HTTP " + response.status));
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message);
            if (chunk.usage) usage = chunk.usage;
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) {
              if (firstToken === null) firstToken = performance.now();
              pieces += 1;
              answer.textContent += delta.content;
            }
          }
        }
      }
      const finished = performance.now();
      const tokens = usage ? usage.completion_tokens : pieces;
      const seconds = (finished - (firstToken === null ? started : firstToken)) / 1000;
      stats.rate.textContent = seconds > 0 ? (tokens / seconds).toFixed(1) : "n/a";
      if (usage) {
        stats.prompt.textContent = String(usage.prompt_tokens);
        stats.completion.textContent = String(usage.completion_tokens);
        stats.total.textContent = String(usage.total_tokens);
      }
      status.textContent = "Done.";
    } catch (error) {
      status.textContent = "Error: " + error.message;
    } finally {
      submit.disabled = false;
    }
  });
}
