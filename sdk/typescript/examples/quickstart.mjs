import { Starfire } from "starfire";

const client = new Starfire(); // reads STARFIRE_API_KEY and STARFIRE_BASE_URL

const stream = await client.chat.completions.create({
  model: "smollm2-135m-instruct",
  messages: [{ role: "user", content: "Write a haiku about the sea." }],
  max_tokens: 100,
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? "");
process.stdout.write("\n");
