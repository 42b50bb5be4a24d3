"""Creates a project and an API key with an admin key (STARFIRE_API_KEY=sf-admin-...), uses the
new key, reads the usage it made back, lists the project's keys, then revokes the new one."""

import time

from starfire import Starfire

admin = Starfire()
project = admin.projects.create(name="quickstart")
key = admin.projects.api_keys.create(project.id, name="my first key")
print("created", key.id, key.redacted_value)

client = Starfire(api_key=key.value, base_url=admin.base_url)
print("models:", [m.id for m in client.models.list()])
answer = client.chat.completions.create(
    model="smollm2-135m-instruct",
    messages=[{"role": "user", "content": "Say hello."}],
    max_tokens=5,
)
print("answer:", answer.choices[0].message.content, f"({answer.usage.completion_tokens} tokens)")

hour_ago = int(time.time()) - 3600
for bucket in admin.usage.completions(start_time=hour_ago, bucket_width="1h", api_key_ids=[key.id]):
    for r in bucket.results:
        print("usage:", r.num_model_requests, "requests,", r.input_tokens, "in,", r.output_tokens, "out")

for k in admin.projects.api_keys.list(project.id):  # walks every page
    print("key", k.id, k.name, k.redacted_value)

admin.projects.api_keys.delete(project.id, key.id)
print("revoked", key.id)
