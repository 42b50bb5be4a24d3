"""Schemathesis hooks for Starfire's contract test (starfire/tests/integration/contract.rs).

What a generated request cannot know, and nothing else:

* Which credential an operation takes. The document's `bearer` scheme is any of an API key, an
  admin key or a console session; schemathesis sends the admin key (its `[auth]`), and this
  swaps it for a project API key on the inference routes and for console sessions on `/v1/me`
  and `/v1/auth/logout` (a session of its own, since signing out ends it). Requests whose
  credential schemathesis removed or spoiled on purpose are left alone.

* Which ids exist. Half of the generated `project_id`s and `organization_id`s (chosen by the
  generated value, so a test case replays the same) become real ones, so the fuzzer gets past
  404s: a project of its own (archiving it leaves the API key's project alone) and another
  organization for the operator's routes.

* An `Idempotency-Key` names one request. Schemathesis reuses the same generated keys (`"0"`,
  the examples) for different bodies, which the server rightly refuses (422, as the IETF
  Idempotency-Key draft says). Like every real client, each request here gets a fresh key when
  the generated one is well-formed; malformed ones are left for the server to refuse.

* A few rules involve more than one field, the clock or the server's state, which JSON Schema
  cannot state: the failures they cause are dropped only when the server refused the request
  with exactly that rule's parameter (`error.param`). Each is documented in the operation's
  description and tested in the integration tests.
"""

import json
import os
import re
import uuid
import zlib

import schemathesis

WELL_FORMED_KEY = re.compile(r"^[!-~]{1,255}$")


REAL_IDS = {
    "project_id": os.environ.get("STARFIRE_PROJECT_ID"),
    "organization_id": os.environ.get("STARFIRE_OTHER_ORGANIZATION_ID"),
}


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    for name, real in REAL_IDS.items():
        if real and name in (path_parameters or {}):
            generated = str(path_parameters[name]).encode("utf-8", "surrogatepass")
            if zlib.crc32(generated) % 2 == 0:
                path_parameters[name] = real
    return path_parameters


ADMIN = f"Bearer {os.environ.get('STARFIRE_ADMIN_KEY')}"
INFERENCE = re.compile(r"^/v1/(chat/completions|completions|embeddings|tokenize|detokenize|models|ws/tickets)")
CREDENTIAL_BY_PATH = [
    (INFERENCE, "STARFIRE_API_KEY"),
    (re.compile(r"^/v1/me$"), "STARFIRE_SESSION"),
    (re.compile(r"^/v1/auth/logout$"), "STARFIRE_LOGOUT_SESSION"),
]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and WELL_FORMED_KEY.match(str(headers[name])):
            headers[name] = f"st-{uuid.uuid4().hex}"
        if name.lower() == "authorization" and headers[name] == ADMIN:
            for path, variable in CREDENTIAL_BY_PATH:
                if path.match(case.operation.path):
                    headers[name] = f"Bearer {os.environ[variable]}"
    case.headers = headers


# A message's fields that depend on its role.
MESSAGE_RULES = {"messages[].content", "messages[].tool_calls", "messages[].tool_call_id"}

# The generation requests' rules beyond their schema:
GENERATION_RULES = {
    # between fields: stream_options only with stream: true; max_tokens or
    # max_completion_tokens, not both, and min_tokens not above it; top_logprobs needs
    # logprobs: true; ignore_eos not with a structured output; tool_choice and
    # parallel_tool_calls only with tools, a named tool_choice one of them, their names unique;
    "stream_options",
    "max_completion_tokens",
    "min_tokens",
    "top_logprobs",
    "ignore_eos",
    "tool_choice",
    "parallel_tool_calls",
    "tool_choice.function.name",
    "tools[].function.name",
    # structured outputs: one of them at most, and one the grammar compiler takes (a JSON
    # schema's keywords, a regular expression's and a Lark grammar's syntax);
    "response_format",
    "structured_outputs",
    "structured_outputs.json",
    "structured_outputs.regex",
    "structured_outputs.choice",
    "structured_outputs.grammar",
    "structured_outputs.json_object",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "tools",
    "tools[].function.parameters",
    # the model's: token ids below its vocabulary.
    "logit_bias",
    "stop_token_ids",
}

# (method, path) -> {status: the `param`s of rules the schema cannot state}
RULES_BEYOND_THE_SCHEMA = {
    # end_time must be after start_time; a page token comes from the previous answer; the
    # most buckets per page depend on bucket_width.
    ("GET", "/v1/organization/usage/completions"): {400: {"end_time", "page", "limit"}},
    ("GET", "/v1/organization/usage/embeddings"): {400: {"end_time", "page", "limit"}},
    ("GET", "/v1/organization/costs"): {400: {"end_time", "page"}},
    # Token ids below the model's vocabulary (in `tokens`, and in an embedding's `input`); an
    # embedding's dimensions are the model's.
    ("POST", "/v1/chat/completions"): {400: {*GENERATION_RULES, *MESSAGE_RULES, "messages"}},
    # Exactly one of prompt and messages; tools only with messages, their names unique, their
    # parameters an object schema.
    ("POST", "/v1/tokenize"): {
        400: {"prompt", "tools", "tools[].function.name", "tools[].function.parameters", *MESSAGE_RULES}
    },
    # best_of only equal to n; a token prompt within the vocabulary, any prompt within the
    # context.
    ("POST", "/v1/completions"): {400: {*GENERATION_RULES, "best_of", "prompt"}},
    ("POST", "/v1/detokenize"): {400: {"tokens"}},
    ("POST", "/v1/embeddings"): {400: {"dimensions", "input"}},
    # A top-up's bounds are the installation's (`billing.stripe.min_top_up_micros`, ...).
    ("POST", "/v1/billing/top_ups"): {422: {"amount_micros"}},
    # expires_at must lie in the future.
    ("POST", "/v1/organization/projects/{project_id}/api_keys"): {422: {"expires_at"}},
    ("POST", "/v1/organization/admin_api_keys"): {422: {"expires_at"}},
    # effective_at at least a second from now (a price never changes the past); the hardware
    # must be an engine this installation runs.
    ("POST", "/v1/billing/admin/prices"): {422: {"effective_at"}},
    ("POST", "/v1/billing/admin/capacity_prices"): {422: {"effective_at", "hardware"}},
    # The model must be one this installation deploys; min <= max <= the installation's
    # `deployments.max_replicas`.
    ("POST", "/v1/organization/deployments"): {422: {"model", "replicas", "hardware"}},
    ("POST", "/v1/organization/deployments/{deployment_id}"): {422: {"replicas"}},
    # An invite token must be one that is pending for this email.
    ("POST", "/v1/auth/signup"): {422: {"invite_token"}},
    # Only Stripe can sign an event.
    ("POST", "/v1/billing/stripe/webhook"): {400: {"Stripe-Signature"}},
}


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    if failure.code != "ST202":
        return True
    rules = RULES_BEYOND_THE_SCHEMA.get((case.operation.method.upper(), case.operation.path), {})
    params = rules.get(response.status_code)
    if not params:
        return True
    try:
        param = json.loads(response.content)["error"]["param"]
    except (ValueError, KeyError, TypeError):
        return True
    # `messages[3].content` is the rule of `messages[].content`.
    return re.sub(r"\[\d+\]", "[]", str(param)) not in params
