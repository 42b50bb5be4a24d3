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
  const transcript = document.getElementById("conversation");
  const toolResults = document.getElementById("tool-results");
  const toolCalls = document.getElementById("tool-calls");
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
  // The conversation so far, in the API's message shapes (the system message is the form's).
  let conversation = [];

  // A field's JSON, or an error naming the field.
  const jsonField = (name, label) => {
    const text = playground.elements[name].value.trim();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new Error(label + " is not JSON: " + error.message);
    }
  };

  // The request for the conversation plus `next` (messages not sent yet).
  const request = (next) => {
    const messages = [];
    const system = playground.elements.system.value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...conversation, ...next);
    const body = {
      model: playground.elements.model.value,
      messages,
      temperature: Number(playground.elements.temperature.value),
      top_p: Number(playground.elements.top_p.value),
      max_tokens: Number(playground.elements.max_tokens.value),
      stream: true,
      stream_options: { include_usage: true },
    };
    if (playground.elements.json_mode.checked) {
      const schema = jsonField("schema", "The JSON schema");
      body.response_format = schema
        ? { type: "json_schema", json_schema: { name: "answer", schema } }
        : { type: "json_object" };
    }
    const tools = jsonField("tools", "The tools");
    if (tools) {
      body.tools = tools;
      body.tool_choice = playground.elements.tool_choice.value;
    }
    return body;
  };
  const promptMessage = () => [{ role: "user", content: playground.elements.prompt.value }];

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
    let body;
    try {
      body = request(promptMessage());
    } catch (error) {
      for (const el of Object.values(snippets)) el.textContent = error.message;
      return;
    }
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
      "    if chunk.choices and chunk.choices[0].delta.tool_calls:\n" +
      "        print(chunk.choices[0].delta.tool_calls)\n" +
      "    if chunk.usage:\n" +
      "        print(\"\\n\", chunk.usage)\n";
    snippets.typescript.textContent =
      "import OpenAI from \"openai\";\n\n" +
      "const client = new OpenAI({ baseURL: " + JSON.stringify(base) + ", apiKey: process.env.STARFIRE_API_KEY });\n" +
      "const stream = await client.chat.completions.create(" + JSON.stringify(body, null, 2) + ");\n" +
      "for await (const chunk of stream) {\n" +
      "  process.stdout.write(chunk.choices[0]?.delta?.content ?? \"\");\n" +
      "  if (chunk.choices[0]?.delta?.tool_calls) console.log(chunk.choices[0].delta.tool_calls);\n" +
      "  if (chunk.usage) console.log(\"\\n\", chunk.usage);\n" +
      "}\n";
  };
  playground.addEventListener("input", updateSnippet);
  updateSnippet();

  const callText = (call) => call.function.name + "(" + call.function.arguments + ")";
  // The transcript: one item per message, calls and results shown as such.
  const render = () => {
    transcript.textContent = "";
    for (const m of conversation) {
      const item = document.createElement("li");
      item.className = "message " + m.role;
      const role = document.createElement("strong");
      role.textContent = m.role === "tool" ? "tool result" : m.role;
      item.append(role, " ");
      const text = document.createElement("span");
      const calls = (m.tool_calls || []).map((c) => "calls " + callText(c));
      text.textContent = [m.content || "", ...calls].filter(Boolean).join("\n");
      item.append(text);
      transcript.append(item);
    }
  };

  // Asks for one tool result per call, then sends them as `tool` messages.
  const askForResults = (calls) => {
    toolCalls.textContent = "";
    calls.forEach((call, i) => {
      const box = document.createElement("div");
      const label = document.createElement("label");
      label.htmlFor = "tool-result-" + i;
      label.textContent = "Result of " + callText(call);
      const input = document.createElement("textarea");
      input.id = "tool-result-" + i;
      input.rows = 2;
      input.dataset.callId = call.id;
      box.append(label, input);
      toolCalls.append(box);
    });
    toolResults.hidden = false;
  };

  // Streams the answer to the conversation plus `next`; on success both join the conversation.
  const run = async (next) => {
    answer.textContent = "";
    toolResults.hidden = true;
    for (const el of Object.values(stats)) el.textContent = "…";
    status.textContent = "Generating…";
    submit.disabled = true;
    const started = performance.now();
    let firstToken = null;
    let pieces = 0;
    let usage = null;
    let content = "";
    const calls = [];
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Authorization": "Bearer " + playground.dataset.token,
        },
        body: JSON.stringify(request(next)),
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
            if (!delta) continue;
            if (delta.content || delta.tool_calls) {
              if (firstToken === null) firstToken = performance.now();
              pieces += 1;
            }
            if (delta.content) content += delta.content;
            for (const piece of delta.tool_calls || []) {
              if (!calls[piece.index]) {
                calls[piece.index] = { id: piece.id, type: "function", function: { name: piece.function.name, arguments: "" } };
              }
              calls[piece.index].function.arguments += piece.function.arguments || "";
            }
            answer.textContent = [content, ...calls.map((c) => "calls " + callText(c))].filter(Boolean).join("\n");
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
      const reply = { role: "assistant", content: calls.length && !content ? null : content };
      if (calls.length) reply.tool_calls = calls;
      conversation.push(...next, reply);
      if (next[0] && next[0].role === "user") playground.elements.prompt.value = "";
      render();
      if (calls.length) askForResults(calls);
      updateSnippet();
      status.textContent = "Done.";
    } catch (error) {
      status.textContent = "Error: " + error.message;
    } finally {
      submit.disabled = false;
    }
  };

  playground.addEventListener("submit", (event) => {
    event.preventDefault();
    run(promptMessage());
  });
  toolResults.addEventListener("submit", (event) => {
    event.preventDefault();
    const results = [...toolCalls.querySelectorAll("textarea")].map((input) => ({
      role: "tool",
      tool_call_id: input.dataset.callId,
      content: input.value,
    }));
    run(results);
  });
  document.getElementById("reset").addEventListener("click", () => {
    conversation = [];
    render();
    toolResults.hidden = true;
    answer.textContent = "";
    status.textContent = "Ready.";
    updateSnippet();
  });
}
