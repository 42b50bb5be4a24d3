"""The hand-written stream and WebSocket types against openapi/openapi.json: every field they
read is a property of the schema of the same object, and every property the schema requires
is one they read (so a renamed or added field in the server's chunks fails here)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from starfire._streaming import ChatCompletionChunk, ChoiceDelta, ChunkChoice, ChunkUsage
from starfire._websocket import ChatDeltaFrame, ChatDoneFrame

SPEC = Path(__file__).resolve().parents[3] / "openapi" / "openapi.json"

# (hand-written type, schema, schema properties the type leaves out on purpose)
PAIRS = [
    (ChatCompletionChunk, "ChatCompletionChunk", set()),
    (ChunkChoice, "ChatChunkChoice", set()),
    (ChoiceDelta, "ChatDelta", set()),
    # The usage of a chunk: the cached-token details are not surfaced.
    (ChunkUsage, "UsageObject", {"prompt_tokens_details"}),
    # `type` selects the frame class.
    (ChatDeltaFrame, "ChatDeltaFrame", {"type"}),
    (ChatDoneFrame, "ChatDoneFrame", {"type"}),
]


@pytest.fixture(scope="module")
def schemas() -> dict:
    return json.loads(SPEC.read_text())["components"]["schemas"]


@pytest.mark.parametrize(("cls", "name", "left_out"), PAIRS, ids=[p[1] for p in PAIRS])
def test_stream_types_match_their_schemas(schemas, cls, name, left_out) -> None:
    schema = schemas[name]
    properties = set(schema["properties"])
    fields = {f.name for f in dataclasses.fields(cls)}
    assert fields <= properties, f"{cls.__name__} reads undocumented {fields - properties}"
    required = set(schema.get("required", [])) - left_out
    assert required <= fields, f"{cls.__name__} misses required {required - fields}"


def test_a_chunk_of_the_documented_shape_parses() -> None:
    chunk = ChatCompletionChunk.from_dict(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "system_fingerprint": "fp",
            "choices": [
                {"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}
            ],
            "usage": None,
        }
    )
    assert chunk.choices[0].delta.content == "hi"
    assert chunk.choices[0].delta.role is None
    assert chunk.usage is None
