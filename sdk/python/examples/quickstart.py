from starfire import Starfire

client = Starfire()  # reads STARFIRE_API_KEY and STARFIRE_BASE_URL

stream = client.chat.completions.create(
    model="smollm2-135m-instruct",
    messages=[{"role": "user", "content": "Write a haiku about the sea."}],
    max_tokens=100,
    stream=True,
)
for chunk in stream:
    print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
