// Creates a project and an API key with an admin key (STARFIRE_API_KEY=sf-admin-...), uses the
// new key, reads the usage it made back, then revokes it.
import { Starfire } from "starfire";

const admin = new Starfire();
const project = await admin.projects.create({ name: "quickstart" });
const key = await admin.projects.apiKeys.create(project.id, { name: "my first key" });
console.log("created", key.id, key.redacted_value);

const client = new Starfire({ apiKey: key.value, baseURL: admin.baseURL });
const answer = await client.chat.completions.create({
  model: "smollm2-135m-instruct",
  messages: [{ role: "user", content: "Say hello." }],
  max_tokens: 5,
});
console.log("answer:", answer.choices[0].message.content, `(${answer.usage.completion_tokens} tokens)`);

const hourAgo = Math.floor(Date.now() / 1000) - 3600;
for await (const bucket of admin.usage.completions({ start_time: hourAgo, bucket_width: "1h", api_key_ids: [key.id] })) {
  for (const r of bucket.results) console.log("usage:", r.num_model_requests, "requests,", r.input_tokens, "in,", r.output_tokens, "out");
}

await admin.projects.apiKeys.delete(project.id, key.id);
console.log("revoked", key.id);
