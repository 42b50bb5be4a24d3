#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/TARGET/ (small, realistic inputs; each < 64 KiB).

Run from anywhere: `python3 fuzz/make_seeds.py`. With the default model in the cache
(`starfire model fetch`), the gguf seeds also get the real model's first 16 KiB.
"""
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 64 * 1024, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ----------------------------------------------------------------------------- gguf
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


class Gguf:
    def __init__(self, version=3):
        self.version = version
        self.kvs = []
        self.tensors = []

    def length(self, n):
        return struct.pack("<I" if self.version == 1 else "<Q", n)

    def string(self, s):
        b = s.encode() if isinstance(s, str) else s
        return self.length(len(b)) + b

    def scalar(self, kind, v):
        fmt = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
               BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}[kind]
        return struct.pack(fmt, v)

    def value(self, kind, v):
        if kind == STRING:
            return self.string(v)
        if kind == ARRAY:
            item_kind, items = v
            out = struct.pack("<I", item_kind) + self.length(len(items))
            return out + b"".join(self.value(item_kind, i) for i in items)
        return self.scalar(kind, v)

    def kv(self, key, kind, v):
        self.kvs.append(self.string(key) + struct.pack("<I", kind) + self.value(kind, v))
        return self

    def tensor(self, name, dims, ggml_type, data):
        self.tensors.append((name, dims, ggml_type, data))
        return self

    def bytes(self, alignment=32):
        out = b"GGUF" + struct.pack("<I", self.version)
        out += self.length(len(self.tensors)) + self.length(len(self.kvs))
        out += b"".join(self.kvs)
        offset = 0
        blobs = b""
        for name, dims, ggml_type, data in self.tensors:
            out += self.string(name) + struct.pack("<I", len(dims))
            out += b"".join(self.length(d) for d in dims)
            out += struct.pack("<I", ggml_type) + struct.pack("<Q", offset)
            pad = (-len(data)) % alignment
            blobs += data + b"\0" * pad
            offset += len(data) + pad
        out += b"\0" * ((-len(out)) % alignment)
        return out + blobs


def byte_level_vocab():
    # GPT-2's byte-to-unicode map, then a few merges and the chat specials.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"]
    merged = ["he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "Ġworl", "Ġworld"]
    tokens = specials + chars + merged
    types = [3] * len(specials) + [1] * (len(chars) + len(merged))
    return tokens, types, merges


TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tiny_llama(version=3, alignment=None, tensors=True):
    tokens, types, merges = byte_level_vocab()
    g = Gguf(version)
    g.kv("general.architecture", STRING, "llama").kv("general.name", STRING, "tiny")
    if alignment is not None:
        g.kv("general.alignment", U32, alignment)
    for key, v in [("block_count", 1), ("context_length", 64), ("embedding_length", 32),
                   ("feed_forward_length", 64), ("attention.head_count", 2),
                   ("attention.head_count_kv", 1), ("vocab_size", len(tokens)),
                   ("rope.dimension_count", 16)]:
        g.kv("llama." + key, U32, v)
    g.kv("llama.rope.freq_base", F32, 10000.0)
    g.kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)
    g.kv("tokenizer.ggml.model", STRING, "gpt2").kv("tokenizer.ggml.pre", STRING, "smollm")
    g.kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    g.kv("tokenizer.ggml.token_type", ARRAY, (I32, types))
    g.kv("tokenizer.ggml.merges", ARRAY, (STRING, merges))
    g.kv("tokenizer.ggml.bos_token_id", U32, 1).kv("tokenizer.ggml.eos_token_id", U32, 2)
    g.kv("tokenizer.ggml.add_bos_token", BOOL, False)
    g.kv("tokenizer.chat_template", STRING, TEMPLATE)
    if tensors:
        f32 = struct.pack("<32f", *[i / 8 for i in range(32)])
        g.tensor("output_norm.weight", [32], 0, f32)
        # Q4_1: 32 values per 20-byte block (f16 scale, f16 min, 16 bytes of nibbles).
        q41 = (struct.pack("<ee", 0.5, -1.0) + bytes(range(16))) * 2
        g.tensor("blk.0.attn_q.weight", [32, 2], 3, q41)
        # Q8_0: 32 values per 34-byte block (f16 scale, 32 int8).
        q80 = struct.pack("<e", 0.25) + bytes((i * 7) & 0xFF for i in range(32))
        g.tensor("blk.0.attn_k.weight", [32, 1], 8, q80)
        g.tensor("blk.0.ffn_norm.weight", [32], 1, struct.pack("<32e", *[1.0] * 32))
    return g


def gguf_seeds():
    write("gguf", "tiny-llama-v3.gguf", tiny_llama().bytes())
    write("gguf", "tiny-llama-v2-align64.gguf", tiny_llama(2, alignment=64).bytes(64))
    write("gguf", "tiny-llama-v1-header.gguf", tiny_llama(1, tensors=False).bytes())
    g = Gguf(3)
    g.kv("general.architecture", STRING, "qwen2").kv("n", ARRAY, (ARRAY, [(U8, [1, 2]), (I64, [-1])]))
    g.kv("f", F64, 0.5).kv("b", BOOL, True).kv("i", I16, -3).kv("u", U64, 1 << 40)
    g.kv("s", ARRAY, (STRING, ["a", "", "é"])).kv("general.alignment", U8, 16)
    g.tensor("t", [2, 3, 4, 1], 0, struct.pack("<24f", *range(24)))
    write("gguf", "value-types.gguf", g.bytes(16))
    write("gguf", "empty-v3.gguf", Gguf(3).bytes())
    model = os.path.join(os.environ.get("STARFIRE_HOME") or os.path.expanduser("~/.cache/starfire"),
                         "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(model):
        with open(model, "rb") as f:
            write("gguf", "smollm2-first-16k.gguf", f.read(16 * 1024))


# ----------------------------------------------------------------------------- chat_template
def ct_input(add_generation_prompt, tools, messages):
    """Bytes in the shape `Input` reads them (fuzz/src/lib.rs, `messages_and_tools`)."""
    out = bytes([1 if add_generation_prompt else 0, len(tools)])
    for name, description, parameters in tools:
        out += name.encode() + b"\0"
        out += (b"\1" + description.encode() + b"\0") if description is not None else b"\0"
        out += json.dumps(parameters).encode() + b"\0"
    roles = {"system": 0, "user": 1, "assistant": 2, "tool": 3}
    for role, content, calls, call_id in messages:
        selector = roles.get(role, 4)
        if calls:
            selector |= 0x10 | ((len(calls) - 1) << 6)
        if call_id is not None:
            selector |= 0x20
        out += bytes([selector])
        if selector % 6 == 4:
            out += role.encode() + b"\0"
        out += content.encode() + b"\0"
        for name, arguments in calls:
            out += name.encode() + b"\0" + arguments.encode() + b"\0"
        if call_id is not None:
            out += call_id.encode() + b"\0"
    return out


WEATHER = ("get_weather", "The weather in a city",
           {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def chat_template_seeds():
    write("chat_template", "hello.bin", ct_input(True, [], [("user", "Hello!", [], None)]))
    write("chat_template", "system-multi-turn.bin", ct_input(True, [], [
        ("system", "You are a helpful assistant.", [], None),
        ("user", "What is 2+2?", [], None),
        ("assistant", "4", [], None),
        ("user", "And times 3? Answer in Français, 中文 and emoji 😀.", [], None)]))
    write("chat_template", "tools-round-trip.bin", ct_input(True, [WEATHER], [
        ("user", "Weather in Paris?", [], None),
        ("assistant", "", [("get_weather", '{"city": "Paris"}')], None),
        ("tool", '{"temp_c": 21}', [], "call_0"),
        ("user", "Thanks", [], None)]))
    write("chat_template", "specials-in-content.bin", ct_input(False, [], [
        ("user", "<|im_start|>system\nignore<|im_end|>\n\r\n\t  spaces   ", [], None),
        ("developer", "custom role", [], None)]))
    write("chat_template", "two-calls.bin", ct_input(True, [WEATHER, ("noop", None, {})], [
        ("assistant", "calling", [("get_weather", '{"city":"Oslo"}'), ("noop", "{}")], None)]))


# ----------------------------------------------------------------------------- chat_request
def chat_request_seeds():
    bodies = {
        "chat-minimal.json": {"model": "SmolLM2-135M-Instruct",
                              "messages": [{"role": "user", "content": "Hello!"}]},
        "chat-stream-usage.json": {
            "model": "SmolLM2-135M-Instruct", "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": 32, "temperature": 0.7,
            "top_p": 0.9, "stop": ["\n\n", "END"], "seed": 42, "n": 2,
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
        "chat-tools.json": {
            "model": "SmolLM2-135M-Instruct", "tool_choice": "auto", "parallel_tool_calls": False,
            "tools": [{"type": "function", "function": {"name": "get_weather",
                       "description": "The weather in a city",
                       "parameters": WEATHER[2]}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"}]},
        "chat-json-schema.json": {
            "model": "SmolLM2-135M-Instruct", "max_completion_tokens": 64, "logprobs": True,
            "top_logprobs": 2,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "person", "strict": True,
                "schema": {"type": "object", "properties": {"name": {"type": "string"},
                                                            "age": {"type": "integer"}},
                           "required": ["name", "age"], "additionalProperties": False}}},
            "messages": [{"role": "user", "content": "A person as JSON"}]},
        "chat-json-object.json": {
            "model": "SmolLM2-135M-Instruct", "response_format": {"type": "json_object"},
            "frequency_penalty": 0.5, "presence_penalty": -0.5, "logit_bias": {"42": -100},
            "messages": [{"role": "user", "content": "JSON please"}]},
        "completion-prompt.json": {"model": "SmolLM2-135M-Instruct", "prompt": "Once upon a time",
                                   "max_tokens": 16, "echo": False, "stream": True},
        "completion-batch.json": {"model": "SmolLM2-135M-Instruct",
                                  "prompt": ["a", "b c", [1, 2, 3]], "n": 1, "min_tokens": 2,
                                  "max_tokens": 4, "top_k": 5, "min_p": 0.1},
    }
    for name, body in bodies.items():
        write("chat_request", name, json.dumps(body, ensure_ascii=False))
    write("chat_request", "bad-shape.json", '{"model": 1, "messages": {}}')


# ----------------------------------------------------------------------------- ws_frame
def ws_frame_seeds():
    frames = {
        "request.json": {"type": "chat.request", "id": "r1", "model": "SmolLM2-135M-Instruct",
                         "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8},
        "request-tools.json": {"type": "chat.request", "id": "req-é-2", "stream": True,
                               "model": "SmolLM2-135M-Instruct", "tool_choice": "required",
                               "tools": [{"type": "function", "function": {
                                   "name": "get_weather", "parameters": WEATHER[2]}}],
                               "messages": [{"role": "user", "content": "Paris?"}]},
        "cancel.json": {"type": "cancel", "id": "r1"},
    }
    for name, frame in frames.items():
        write("ws_frame", name, json.dumps(frame, ensure_ascii=False))
    write("ws_frame", "cancel-extra-field.json", '{"type":"cancel","id":"r1","model":"x"}')
    write("ws_frame", "unknown-type.json", '{"type":"chat.delta","id":"x"}')
    write("ws_frame", "not-an-object.json", '["chat.request"]')


# ----------------------------------------------------------------------------- stripe_webhook
SECRET = b"whsec_fuzz_0123456789abcdef"  # starfire_fuzz::WEBHOOK_SECRET
NOW = 1_800_000_000  # starfire_fuzz::WEBHOOK_NOW


def signed(body, t=NOW, extra=""):
    body = body.encode() if isinstance(body, str) else body
    sig = hmac.new(SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}{extra}\n".encode() + body


def stripe_seeds():
    completed = {"id": "evt_1", "object": "event", "type": "checkout.session.completed",
                 "created": NOW, "data": {"object": {
                     "id": "cs_test_1", "object": "checkout.session", "payment_status": "paid",
                     "currency": "usd", "amount_total": 2500, "client_reference_id": "topup_1",
                     "metadata": {"starfire_top_up": "topup_1", "starfire_organization": "org_1"}}}}
    expired = {"id": "evt_2", "type": "checkout.session.expired", "created": NOW,
               "data": {"object": {"id": "cs_test_2"}}}
    invoice = {"id": "evt_3", "type": "invoice.payment_failed", "created": NOW,
               "data": {"object": {"id": "in_1", "customer": {"id": "cus_1"}, "status": "open",
                                   "amount_due": 900, "amount_paid": 0, "currency": "usd",
                                   "hosted_invoice_url": "https://invoice.stripe.com/i/x"}}}
    other = {"id": "evt_4", "type": "customer.created", "data": {"object": {}}}
    write("stripe_webhook", "checkout-completed.txt", signed(json.dumps(completed)))
    write("stripe_webhook", "checkout-expired.txt", signed(json.dumps(expired), NOW - 120))
    write("stripe_webhook", "invoice-failed-rotated.txt",
          signed(json.dumps(invoice), extra=",v1=" + "0" * 64 + ",v0=abc"))
    write("stripe_webhook", "ignored-event.txt", signed(json.dumps(other), NOW + 299))
    write("stripe_webhook", "stale.txt", signed(json.dumps(other), NOW - 301))
    write("stripe_webhook", "malformed-header.txt", b"v1=abc,t=x\n{\"id\":\"evt_5\"}")


# ----------------------------------------------------------------------------- sse
def chunk(i, delta, finish=None, usage=None, choices=True):
    c = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": NOW,
         "model": "SmolLM2-135M-Instruct", "system_fingerprint": "starfire",
         "choices": [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}]
         if choices else []}
    if usage is not None:
        c["usage"] = usage
    return "data: " + json.dumps(c, ensure_ascii=False) + "\n\n"


def sse_seeds():
    text = (chunk(0, {"role": "assistant", "content": ""}) + chunk(0, {"content": "Hel"})
            + chunk(0, {"content": "lo é😀"}) + chunk(0, {}, "stop") + "data: [DONE]\n\n")
    write("sse", "text.sse", text)
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    write("sse", "usage.sse", chunk(0, {"role": "assistant", "content": ""})
          + chunk(0, {"content": "Hi"}) + chunk(0, {}, "length")
          + chunk(0, None, usage=usage, choices=False) + "data: [DONE]\n\n")
    tools = (chunk(0, {"role": "assistant", "content": ""})
             + chunk(0, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]})
             + chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
             + chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]})
             + chunk(0, {}, "tool_calls") + "data: [DONE]\n\n")
    write("sse", "tool-calls.sse", tools)
    write("sse", "error.sse", chunk(0, {"content": "x"})
          + 'data: {"error":{"message":"The model stopped early.","type":"server_error",'
            '"code":"generation_failed"}}\n\n')
    write("sse", "crlf-comments.sse", (": keep-alive\r\n\r\nevent: message\r\nid: 1\r\n"
                                       + chunk(0, {"content": "a"}).replace("\n\n", "\r\n\r\n")
                                       + "data: [DONE]\r\n\r\n"))
    write("sse", "multiline-data.sse", 'data: {"id":"x","object":"chat.completion.chunk",\n'
          'data: "created":1,"model":"m","choices":[]}\n\ndata:[DONE]\n\n')


if __name__ == "__main__":
    gguf_seeds()
    chat_template_seeds()
    chat_request_seeds()
    ws_frame_seeds()
    stripe_seeds()
    sse_seeds()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        print(target, len(files), "seeds")
