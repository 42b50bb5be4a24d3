"""The official OpenAI Python SDK against a running `starfire serve`.

starfire/tests/integration/openai_sdk.rs starts the server and runs this file with
OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (an inference key) and STARFIRE_QUEUE_TOKEN_LIMIT (the
server's per-organization limit on waiting prompt tokens, so that a longer prompt gets 429).
"""

import math
import os
import unittest
from typing import Literal

import openai
import pydantic
from openai import OpenAI

BASE_URL = os.environ["OPENAI_BASE_URL"]
API_KEY = os.environ["OPENAI_API_KEY"]
QUEUE_TOKEN_LIMIT = int(os.environ["STARFIRE_QUEUE_TOKEN_LIMIT"])
MODEL = "smollm2-135m-instruct"
# Its greedy answer runs past 24 tokens, so max_tokens ends it ("length") in the tests below.
PLANETS = [{"role": "user", "content": "List the planets of the solar system."}]


def client(api_key=API_KEY):
    # No retries: a 429 must reach the test as RateLimitError, not be retried away.
    return OpenAI(base_url=BASE_URL, api_key=api_key, max_retries=0, timeout=120)


class Models(unittest.TestCase):
    def test_list_and_retrieve(self):
        c = client()
        models = list(c.models.list())
        self.assertIn(MODEL, [m.id for m in models])
        model = c.models.retrieve(MODEL)
        self.assertEqual(model.id, MODEL)
        self.assertEqual(model.object, "model")
        self.assertIsInstance(model.created, int)


class Chat(unittest.TestCase):
    def test_greedy_then_stream_agree_with_usage_last(self):
        c = client()
        full = c.chat.completions.create(model=MODEL, messages=PLANETS, max_tokens=16, temperature=0)
        self.assertEqual(full.object, "chat.completion")
        self.assertTrue(full.id.startswith("chatcmpl-"), full.id)
        self.assertEqual(full.model, MODEL)
        self.assertIsNotNone(full.system_fingerprint)
        choice = full.choices[0]
        self.assertEqual(choice.message.role, "assistant")
        self.assertEqual(choice.finish_reason, "length")
        self.assertEqual(full.usage.completion_tokens, 16)
        self.assertEqual(full.usage.total_tokens, full.usage.prompt_tokens + 16)

        chunks = list(
            c.chat.completions.create(
                model=MODEL,
                messages=PLANETS,
                max_tokens=16,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        self.assertTrue(all(ch.object == "chat.completion.chunk" for ch in chunks))
        self.assertEqual(len({ch.id for ch in chunks}), 1)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        last = chunks[-1]
        self.assertEqual(last.choices, [])
        self.assertEqual(last.usage.completion_tokens, 16)
        self.assertEqual(last.usage.prompt_tokens, full.usage.prompt_tokens)
        self.assertTrue(all(ch.usage is None for ch in chunks[:-1]))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks[:-1])
        self.assertEqual(text, choice.message.content)
        reasons = [ch.choices[0].finish_reason for ch in chunks[:-1] if ch.choices[0].finish_reason]
        self.assertEqual(reasons, ["length"])

    def test_n_2_with_logprobs(self):
        c = client()
        r = c.chat.completions.create(
            model=MODEL,
            messages=PLANETS,
            max_tokens=8,
            n=2,
            temperature=1.0,
            seed=11,
            logprobs=True,
            top_logprobs=3,
        )
        self.assertEqual([ch.index for ch in r.choices], [0, 1])
        tokens = 0
        for ch in r.choices:
            content = ch.logprobs.content
            self.assertEqual(len(content), 8)
            tokens += len(content)
            self.assertEqual("".join(t.token for t in content), ch.message.content)
            for t in content:
                self.assertLessEqual(t.logprob, 0.0)
                self.assertEqual(len(t.top_logprobs), 3)
                self.assertEqual(t.bytes, list(t.token.encode()))
                top = [x.logprob for x in t.top_logprobs]
                self.assertEqual(top, sorted(top, reverse=True))
                self.assertGreaterEqual(top[0], t.logprob - 1e-4)
        self.assertEqual(r.usage.completion_tokens, tokens)

    def test_n_2_streams_both_choices(self):
        stream = client().chat.completions.create(
            model=MODEL, messages=PLANETS, max_tokens=6, n=2, temperature=1.0, seed=3, stream=True
        )
        finished = {}
        for chunk in stream:
            for ch in chunk.choices:
                if ch.finish_reason:
                    finished[ch.index] = ch.finish_reason
        self.assertEqual(finished, {0: "length", 1: "length"})

    def test_stop_ends_before_the_stop_string(self):
        c = client()
        full = c.chat.completions.create(model=MODEL, messages=PLANETS, max_tokens=24, temperature=0)
        text = full.choices[0].message.content
        words = text.split()
        self.assertGreater(len(words), 3, text)
        stop = words[2]
        cut = c.chat.completions.create(
            model=MODEL, messages=PLANETS, max_tokens=24, temperature=0, stop=[stop]
        )
        self.assertEqual(cut.choices[0].finish_reason, "stop")
        self.assertEqual(cut.choices[0].message.content, text[: text.index(stop)])


class Completions(unittest.TestCase):
    def test_text_completion_with_logprobs_and_stream(self):
        c = client()
        prompt = "The capital of France is"
        r = c.completions.create(model=MODEL, prompt=prompt, max_tokens=8, temperature=0, logprobs=2)
        self.assertEqual(r.object, "text_completion")
        choice = r.choices[0]
        self.assertEqual(choice.finish_reason, "length")
        self.assertEqual(len(choice.logprobs.tokens), 8)
        self.assertEqual("".join(choice.logprobs.tokens), choice.text)
        self.assertTrue(all(len(top) == 2 for top in choice.logprobs.top_logprobs))
        self.assertEqual(r.usage.completion_tokens, 8)

        chunks = list(
            c.completions.create(
                model=MODEL,
                prompt=prompt,
                max_tokens=8,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 8)
        self.assertEqual("".join(ch.choices[0].text for ch in chunks[:-1]), choice.text)

    def test_several_prompts(self):
        r = client().completions.create(model=MODEL, prompt=["One, two,", "Red, green,"], max_tokens=3)
        self.assertEqual(sorted(ch.index for ch in r.choices), [0, 1])


class Embeddings(unittest.TestCase):
    def test_float_and_base64_agree_and_are_normalized(self):
        c = client()
        inputs = ["The sky is blue.", "Rust is a programming language."]
        # The SDK asks for base64 unless told otherwise, and decodes it.
        default = c.embeddings.create(model=MODEL, input=inputs)
        floats = c.embeddings.create(model=MODEL, input=inputs, encoding_format="float")
        self.assertEqual(len(default.data), 2)
        self.assertEqual(default.usage.prompt_tokens, floats.usage.prompt_tokens)
        for a, b in zip(default.data, floats.data):
            self.assertEqual(a.index, b.index)
            self.assertEqual(len(a.embedding), len(b.embedding))
            self.assertGreater(len(a.embedding), 100)
            self.assertAlmostEqual(math.sqrt(sum(x * x for x in b.embedding)), 1.0, places=3)
            self.assertLess(max(abs(x - y) for x, y in zip(a.embedding, b.embedding)), 1e-6)
        self.assertNotEqual(floats.data[0].embedding, floats.data[1].embedding)


class Errors(unittest.TestCase):
    def test_bad_key_is_authentication_error(self):
        with self.assertRaises(openai.AuthenticationError) as ctx:
            client(api_key="sf-not-a-real-key").models.list()
        self.assertEqual(ctx.exception.status_code, 401)

    def test_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as ctx:
            client().chat.completions.create(model="no-such-model", messages=PLANETS, max_tokens=1)
        self.assertEqual(ctx.exception.status_code, 404)
        self.assertEqual(ctx.exception.code, "model_not_found")

    def test_bad_value_is_bad_request_naming_the_field(self):
        with self.assertRaises(openai.BadRequestError) as ctx:
            client().chat.completions.create(model=MODEL, messages=PLANETS, temperature=5)
        self.assertEqual(ctx.exception.status_code, 400)
        self.assertEqual(ctx.exception.param, "temperature")

    def test_full_queue_is_rate_limit_error(self):
        # One prompt longer than the organization's whole waiting-token allowance.
        words = " ".join(["river"] * (QUEUE_TOKEN_LIMIT + 16))
        with self.assertRaises(openai.RateLimitError) as ctx:
            client().completions.create(model=MODEL, prompt=words, max_tokens=1)
        self.assertEqual(ctx.exception.status_code, 429)
        self.assertEqual(ctx.exception.code, "rate_limit_exceeded")
        self.assertEqual(ctx.exception.response.headers["retry-after"], "1")


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=24)
    country: str = pydantic.Field(max_length=24)
    population: int = pydantic.Field(ge=0)
    capital: bool


CITY = [{"role": "user", "content": "Describe Paris as JSON."}]


class StructuredOutputs(unittest.TestCase):
    def test_parse_with_a_pydantic_model(self):
        completion = client().chat.completions.parse(
            model=MODEL, messages=CITY, response_format=City, temperature=0, max_tokens=120
        )
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "stop")
        self.assertIsInstance(choice.message.parsed, City)
        self.assertEqual(City.model_validate_json(choice.message.content), choice.message.parsed)

    def test_stream_helper_parses_the_same_answer(self):
        c = client()
        plain = c.chat.completions.parse(
            model=MODEL, messages=CITY, response_format=City, temperature=0, max_tokens=120
        )
        with c.chat.completions.stream(
            model=MODEL, messages=CITY, response_format=City, temperature=0, max_tokens=120
        ) as stream:
            for _ in stream:
                pass
            final = stream.get_final_completion()
        self.assertEqual(final.choices[0].message.parsed, plain.choices[0].message.parsed)

    def test_unenforceable_schema_is_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as ctx:
            client().chat.completions.create(
                model=MODEL,
                messages=CITY,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "s", "schema": {"type": "array", "uniqueItems": True}},
                },
            )
        self.assertEqual(ctx.exception.param, "response_format")
        self.assertIn("uniqueItems", ctx.exception.message)


class GetWeather(pydantic.BaseModel):
    """Get the weather forecast of a city."""

    city: str = pydantic.Field(max_length=24)
    unit: Literal["celsius", "fahrenheit"]


WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


class Tools(unittest.TestCase):
    def test_parse_gives_typed_arguments(self):
        completion = client().chat.completions.parse(
            model=MODEL,
            messages=WEATHER,
            tools=[openai.pydantic_function_tool(GetWeather)],
            tool_choice="required",
            temperature=0,
            max_tokens=120,
        )
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        self.assertIsNone(choice.message.content)
        call = choice.message.tool_calls[0]
        self.assertTrue(call.id.startswith("call_"))
        self.assertEqual(call.function.name, "GetWeather")
        self.assertIsInstance(call.function.parsed_arguments, GetWeather)

    def test_stream_helper_assembles_the_same_calls(self):
        c = client()
        args = dict(
            model=MODEL,
            messages=WEATHER,
            tools=[openai.pydantic_function_tool(GetWeather)],
            tool_choice="required",
            temperature=0,
            max_tokens=120,
        )
        plain = c.chat.completions.parse(**args)
        with c.chat.completions.stream(**args) as stream:
            done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
            final = stream.get_final_completion()
        want = [(t.function.name, t.function.arguments) for t in plain.choices[0].message.tool_calls]
        self.assertEqual([(e.name, e.arguments) for e in done], want)
        got = final.choices[0].message.tool_calls
        self.assertEqual([(t.function.name, t.function.arguments) for t in got], want)
        self.assertEqual(got[0].function.parsed_arguments, done[0].parsed_arguments)

    def test_a_tool_result_round_trips(self):
        c = client()
        first = c.chat.completions.create(
            model=MODEL,
            messages=WEATHER,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            temperature=0,
            max_tokens=120,
        )
        self.assertEqual(first.choices[0].finish_reason, "stop")
        message = first.choices[0].message
        self.assertEqual(message.tool_calls[0].function.name, "get_weather")
        result = {
            "role": "tool",
            "tool_call_id": message.tool_calls[0].id,
            "content": "18 degrees and sunny",
        }
        second = c.chat.completions.create(
            model=MODEL,
            messages=WEATHER + [message, result],
            tools=[WEATHER_TOOL],
            temperature=0,
            max_tokens=30,
        )
        self.assertIn(second.choices[0].finish_reason, ("stop", "length", "tool_calls"))
        # The prompt holds the first one, the call and its result.
        self.assertGreater(second.usage.prompt_tokens, first.usage.prompt_tokens + 20)
        # With `none`, the answer is text.
        third = c.chat.completions.create(
            model=MODEL,
            messages=WEATHER + [message, result],
            tools=[WEATHER_TOOL],
            tool_choice="none",
            temperature=0,
            max_tokens=30,
        )
        self.assertIsInstance(third.choices[0].message.content, str)
        self.assertIsNone(third.choices[0].message.tool_calls)


if __name__ == "__main__":
    unittest.main(verbosity=2)
