from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.completion_request_guided_json_type_0 import (
        CompletionRequestGuidedJsonType0,
    )
    from ..models.completion_request_logit_bias_type_0 import (
        CompletionRequestLogitBiasType0,
    )
    from ..models.response_format_type_0 import ResponseFormatType0
    from ..models.response_format_type_1 import ResponseFormatType1
    from ..models.response_format_type_2 import ResponseFormatType2
    from ..models.stream_options import StreamOptions
    from ..models.structured_outputs import StructuredOutputs


T = TypeVar("T", bound="CompletionRequest")


@_attrs_define
class CompletionRequest:
    """A text completion request, with OpenAI's fields and vLLM's sampling extras.

    Attributes:
        model (str): A served model (`GET /v1/models`). Example: smollm2-135m-instruct.
        prompt (list[int] | list[list[int]] | list[str] | str): `prompt`: a string, several strings, token ids, or
            several lists of token ids.
        best_of (int | None | Unset): Only equal to `n` (or unset) is supported.
        echo (bool | None | Unset): Only `false` is supported.
        frequency_penalty (float | None | Unset): -2 to 2.
        guided_choice (list[str] | None | Unset): vLLM's older name for `structured_outputs.choice`.
        guided_grammar (None | str | Unset): vLLM's older name for `structured_outputs.grammar` (llguidance's Lark
            syntax).
        guided_json (CompletionRequestGuidedJsonType0 | None | Unset): vLLM's older name for `structured_outputs.json`:
            a JSON schema (an object, or
            its text).
        guided_regex (None | str | Unset): vLLM's older name for `structured_outputs.regex`.
        ignore_eos (bool | None | Unset): vLLM: keep generating after EOS.
        logit_bias (CompletionRequestLogitBiasType0 | None | Unset): Token id (as a string) to a bias from -100 to 100;
            at most 300 tokens.
        logprobs (int | None | Unset): Return log-probabilities of each token and of this many alternatives (0 to 20).
        max_tokens (int | None | Unset): Most tokens to generate per choice (default 16, as OpenAI).
        min_p (float | None | Unset): vLLM: drop tokens below `min_p` times the top token's probability; 0 to 1.
        min_tokens (int | None | Unset): vLLM: EOS and stop tokens cannot end a choice before this many tokens.
        n (int | None | Unset): Choices per prompt, 1 to 16. Default 1.
        presence_penalty (float | None | Unset): -2 to 2.
        priority (int | None | Unset): vLLM: lower runs earlier among this organization's requests (default 0).
        repetition_penalty (float | None | Unset): vLLM: > 1 discourages repeating prompt or output tokens; in (0, 10].
        response_format (None | ResponseFormatType0 | ResponseFormatType1 | ResponseFormatType2 | Unset):
        seed (int | None | Unset): Makes sampling reproducible.
        stop (list[str] | None | str | Unset):
        stop_token_ids (list[int] | None | Unset): vLLM: token ids that end a choice; at most 1024.
        stream (bool | None | Unset): Stream the answer as server-sent events (`data: {chunk}`, then `data: [DONE]`).
        stream_options (None | StreamOptions | Unset):
        structured_outputs (None | StructuredOutputs | Unset):
        suffix (None | Unset): Not supported yet: refused with 400 unless null.
        temperature (float | None | Unset): 0 to 2; 0 is greedy. Default 1.
        top_k (int | None | Unset): vLLM: keep the `top_k` most likely tokens (0 or -1: all).
        top_p (float | None | Unset): In (0, 1]. Default 1.
        user (None | str | Unset): An end-user id (accepted for compatibility; not used for anything yet).
    """

    model: str
    prompt: list[int] | list[list[int]] | list[str] | str
    best_of: int | None | Unset = UNSET
    echo: bool | None | Unset = UNSET
    frequency_penalty: float | None | Unset = UNSET
    guided_choice: list[str] | None | Unset = UNSET
    guided_grammar: None | str | Unset = UNSET
    guided_json: CompletionRequestGuidedJsonType0 | None | Unset = UNSET
    guided_regex: None | str | Unset = UNSET
    ignore_eos: bool | None | Unset = UNSET
    logit_bias: CompletionRequestLogitBiasType0 | None | Unset = UNSET
    logprobs: int | None | Unset = UNSET
    max_tokens: int | None | Unset = UNSET
    min_p: float | None | Unset = UNSET
    min_tokens: int | None | Unset = UNSET
    n: int | None | Unset = UNSET
    presence_penalty: float | None | Unset = UNSET
    priority: int | None | Unset = UNSET
    repetition_penalty: float | None | Unset = UNSET
    response_format: (
        None | ResponseFormatType0 | ResponseFormatType1 | ResponseFormatType2 | Unset
    ) = UNSET
    seed: int | None | Unset = UNSET
    stop: list[str] | None | str | Unset = UNSET
    stop_token_ids: list[int] | None | Unset = UNSET
    stream: bool | None | Unset = UNSET
    stream_options: None | StreamOptions | Unset = UNSET
    structured_outputs: None | StructuredOutputs | Unset = UNSET
    suffix: None | Unset = UNSET
    temperature: float | None | Unset = UNSET
    top_k: int | None | Unset = UNSET
    top_p: float | None | Unset = UNSET
    user: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.completion_request_guided_json_type_0 import (
            CompletionRequestGuidedJsonType0,
        )
        from ..models.completion_request_logit_bias_type_0 import (
            CompletionRequestLogitBiasType0,
        )
        from ..models.response_format_type_0 import ResponseFormatType0
        from ..models.response_format_type_1 import ResponseFormatType1
        from ..models.response_format_type_2 import ResponseFormatType2
        from ..models.stream_options import StreamOptions
        from ..models.structured_outputs import StructuredOutputs

        model = self.model

        prompt: list[int] | list[list[int]] | list[str] | str
        if isinstance(self.prompt, list) or isinstance(self.prompt, list):
            prompt = self.prompt

        elif isinstance(self.prompt, list):
            prompt = []
            for componentsschemas_prompt_input_type_3_item_data in self.prompt:
                componentsschemas_prompt_input_type_3_item = (
                    componentsschemas_prompt_input_type_3_item_data
                )

                prompt.append(componentsschemas_prompt_input_type_3_item)

        else:
            prompt = self.prompt

        best_of: int | None | Unset
        if isinstance(self.best_of, Unset):
            best_of = UNSET
        else:
            best_of = self.best_of

        echo: bool | None | Unset
        if isinstance(self.echo, Unset):
            echo = UNSET
        else:
            echo = self.echo

        frequency_penalty: float | None | Unset
        if isinstance(self.frequency_penalty, Unset):
            frequency_penalty = UNSET
        else:
            frequency_penalty = self.frequency_penalty

        guided_choice: list[str] | None | Unset
        if isinstance(self.guided_choice, Unset):
            guided_choice = UNSET
        elif isinstance(self.guided_choice, list):
            guided_choice = self.guided_choice

        else:
            guided_choice = self.guided_choice

        guided_grammar: None | str | Unset
        if isinstance(self.guided_grammar, Unset):
            guided_grammar = UNSET
        else:
            guided_grammar = self.guided_grammar

        guided_json: dict[str, Any] | None | Unset
        if isinstance(self.guided_json, Unset):
            guided_json = UNSET
        elif isinstance(self.guided_json, CompletionRequestGuidedJsonType0):
            guided_json = self.guided_json.to_dict()
        else:
            guided_json = self.guided_json

        guided_regex: None | str | Unset
        if isinstance(self.guided_regex, Unset):
            guided_regex = UNSET
        else:
            guided_regex = self.guided_regex

        ignore_eos: bool | None | Unset
        if isinstance(self.ignore_eos, Unset):
            ignore_eos = UNSET
        else:
            ignore_eos = self.ignore_eos

        logit_bias: dict[str, Any] | None | Unset
        if isinstance(self.logit_bias, Unset):
            logit_bias = UNSET
        elif isinstance(self.logit_bias, CompletionRequestLogitBiasType0):
            logit_bias = self.logit_bias.to_dict()
        else:
            logit_bias = self.logit_bias

        logprobs: int | None | Unset
        if isinstance(self.logprobs, Unset):
            logprobs = UNSET
        else:
            logprobs = self.logprobs

        max_tokens: int | None | Unset
        if isinstance(self.max_tokens, Unset):
            max_tokens = UNSET
        else:
            max_tokens = self.max_tokens

        min_p: float | None | Unset
        if isinstance(self.min_p, Unset):
            min_p = UNSET
        else:
            min_p = self.min_p

        min_tokens: int | None | Unset
        if isinstance(self.min_tokens, Unset):
            min_tokens = UNSET
        else:
            min_tokens = self.min_tokens

        n: int | None | Unset
        if isinstance(self.n, Unset):
            n = UNSET
        else:
            n = self.n

        presence_penalty: float | None | Unset
        if isinstance(self.presence_penalty, Unset):
            presence_penalty = UNSET
        else:
            presence_penalty = self.presence_penalty

        priority: int | None | Unset
        if isinstance(self.priority, Unset):
            priority = UNSET
        else:
            priority = self.priority

        repetition_penalty: float | None | Unset
        if isinstance(self.repetition_penalty, Unset):
            repetition_penalty = UNSET
        else:
            repetition_penalty = self.repetition_penalty

        response_format: dict[str, Any] | None | Unset
        if isinstance(self.response_format, Unset):
            response_format = UNSET
        elif (
            isinstance(self.response_format, ResponseFormatType0)
            or isinstance(self.response_format, ResponseFormatType1)
            or isinstance(self.response_format, ResponseFormatType2)
        ):
            response_format = self.response_format.to_dict()
        else:
            response_format = self.response_format

        seed: int | None | Unset
        if isinstance(self.seed, Unset):
            seed = UNSET
        else:
            seed = self.seed

        stop: list[str] | None | str | Unset
        if isinstance(self.stop, Unset):
            stop = UNSET
        elif isinstance(self.stop, list):
            stop = self.stop

        else:
            stop = self.stop

        stop_token_ids: list[int] | None | Unset
        if isinstance(self.stop_token_ids, Unset):
            stop_token_ids = UNSET
        elif isinstance(self.stop_token_ids, list):
            stop_token_ids = self.stop_token_ids

        else:
            stop_token_ids = self.stop_token_ids

        stream: bool | None | Unset
        if isinstance(self.stream, Unset):
            stream = UNSET
        else:
            stream = self.stream

        stream_options: dict[str, Any] | None | Unset
        if isinstance(self.stream_options, Unset):
            stream_options = UNSET
        elif isinstance(self.stream_options, StreamOptions):
            stream_options = self.stream_options.to_dict()
        else:
            stream_options = self.stream_options

        structured_outputs: dict[str, Any] | None | Unset
        if isinstance(self.structured_outputs, Unset):
            structured_outputs = UNSET
        elif isinstance(self.structured_outputs, StructuredOutputs):
            structured_outputs = self.structured_outputs.to_dict()
        else:
            structured_outputs = self.structured_outputs

        suffix = self.suffix

        temperature: float | None | Unset
        if isinstance(self.temperature, Unset):
            temperature = UNSET
        else:
            temperature = self.temperature

        top_k: int | None | Unset
        if isinstance(self.top_k, Unset):
            top_k = UNSET
        else:
            top_k = self.top_k

        top_p: float | None | Unset
        if isinstance(self.top_p, Unset):
            top_p = UNSET
        else:
            top_p = self.top_p

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model": model,
                "prompt": prompt,
            }
        )
        if best_of is not UNSET:
            field_dict["best_of"] = best_of
        if echo is not UNSET:
            field_dict["echo"] = echo
        if frequency_penalty is not UNSET:
            field_dict["frequency_penalty"] = frequency_penalty
        if guided_choice is not UNSET:
            field_dict["guided_choice"] = guided_choice
        if guided_grammar is not UNSET:
            field_dict["guided_grammar"] = guided_grammar
        if guided_json is not UNSET:
            field_dict["guided_json"] = guided_json
        if guided_regex is not UNSET:
            field_dict["guided_regex"] = guided_regex
        if ignore_eos is not UNSET:
            field_dict["ignore_eos"] = ignore_eos
        if logit_bias is not UNSET:
            field_dict["logit_bias"] = logit_bias
        if logprobs is not UNSET:
            field_dict["logprobs"] = logprobs
        if max_tokens is not UNSET:
            field_dict["max_tokens"] = max_tokens
        if min_p is not UNSET:
            field_dict["min_p"] = min_p
        if min_tokens is not UNSET:
            field_dict["min_tokens"] = min_tokens
        if n is not UNSET:
            field_dict["n"] = n
        if presence_penalty is not UNSET:
            field_dict["presence_penalty"] = presence_penalty
        if priority is not UNSET:
            field_dict["priority"] = priority
        if repetition_penalty is not UNSET:
            field_dict["repetition_penalty"] = repetition_penalty
        if response_format is not UNSET:
            field_dict["response_format"] = response_format
        if seed is not UNSET:
            field_dict["seed"] = seed
        if stop is not UNSET:
            field_dict["stop"] = stop
        if stop_token_ids is not UNSET:
            field_dict["stop_token_ids"] = stop_token_ids
        if stream is not UNSET:
            field_dict["stream"] = stream
        if stream_options is not UNSET:
            field_dict["stream_options"] = stream_options
        if structured_outputs is not UNSET:
            field_dict["structured_outputs"] = structured_outputs
        if suffix is not UNSET:
            field_dict["suffix"] = suffix
        if temperature is not UNSET:
            field_dict["temperature"] = temperature
        if top_k is not UNSET:
            field_dict["top_k"] = top_k
        if top_p is not UNSET:
            field_dict["top_p"] = top_p
        if user is not UNSET:
            field_dict["user"] = user

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.completion_request_guided_json_type_0 import (
            CompletionRequestGuidedJsonType0,
        )
        from ..models.completion_request_logit_bias_type_0 import (
            CompletionRequestLogitBiasType0,
        )
        from ..models.response_format_type_0 import ResponseFormatType0
        from ..models.response_format_type_1 import ResponseFormatType1
        from ..models.response_format_type_2 import ResponseFormatType2
        from ..models.stream_options import StreamOptions
        from ..models.structured_outputs import StructuredOutputs

        d = dict(src_dict)
        model = d.pop("model")

        def _parse_prompt(
            data: object,
        ) -> list[int] | list[list[int]] | list[str] | str:
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_prompt_input_type_1 = cast(list[str], data)

                return componentsschemas_prompt_input_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_prompt_input_type_2 = cast(list[int], data)

                return componentsschemas_prompt_input_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_prompt_input_type_3 = []
                _componentsschemas_prompt_input_type_3 = data
                for (
                    componentsschemas_prompt_input_type_3_item_data
                ) in _componentsschemas_prompt_input_type_3:
                    componentsschemas_prompt_input_type_3_item = cast(
                        list[int], componentsschemas_prompt_input_type_3_item_data
                    )

                    componentsschemas_prompt_input_type_3.append(
                        componentsschemas_prompt_input_type_3_item
                    )

                return componentsschemas_prompt_input_type_3
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | list[list[int]] | list[str] | str, data)

        prompt = _parse_prompt(d.pop("prompt"))

        def _parse_best_of(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        best_of = _parse_best_of(d.pop("best_of", UNSET))

        def _parse_echo(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        echo = _parse_echo(d.pop("echo", UNSET))

        def _parse_frequency_penalty(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        frequency_penalty = _parse_frequency_penalty(d.pop("frequency_penalty", UNSET))

        def _parse_guided_choice(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                guided_choice_type_0 = cast(list[str], data)

                return guided_choice_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        guided_choice = _parse_guided_choice(d.pop("guided_choice", UNSET))

        def _parse_guided_grammar(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        guided_grammar = _parse_guided_grammar(d.pop("guided_grammar", UNSET))

        def _parse_guided_json(
            data: object,
        ) -> CompletionRequestGuidedJsonType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                guided_json_type_0 = CompletionRequestGuidedJsonType0.from_dict(data)

                return guided_json_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CompletionRequestGuidedJsonType0 | None | Unset, data)

        guided_json = _parse_guided_json(d.pop("guided_json", UNSET))

        def _parse_guided_regex(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        guided_regex = _parse_guided_regex(d.pop("guided_regex", UNSET))

        def _parse_ignore_eos(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        ignore_eos = _parse_ignore_eos(d.pop("ignore_eos", UNSET))

        def _parse_logit_bias(
            data: object,
        ) -> CompletionRequestLogitBiasType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                logit_bias_type_0 = CompletionRequestLogitBiasType0.from_dict(data)

                return logit_bias_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CompletionRequestLogitBiasType0 | None | Unset, data)

        logit_bias = _parse_logit_bias(d.pop("logit_bias", UNSET))

        def _parse_logprobs(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        logprobs = _parse_logprobs(d.pop("logprobs", UNSET))

        def _parse_max_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_tokens = _parse_max_tokens(d.pop("max_tokens", UNSET))

        def _parse_min_p(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        min_p = _parse_min_p(d.pop("min_p", UNSET))

        def _parse_min_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        min_tokens = _parse_min_tokens(d.pop("min_tokens", UNSET))

        def _parse_n(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        n = _parse_n(d.pop("n", UNSET))

        def _parse_presence_penalty(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        presence_penalty = _parse_presence_penalty(d.pop("presence_penalty", UNSET))

        def _parse_priority(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        priority = _parse_priority(d.pop("priority", UNSET))

        def _parse_repetition_penalty(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        repetition_penalty = _parse_repetition_penalty(
            d.pop("repetition_penalty", UNSET)
        )

        def _parse_response_format(
            data: object,
        ) -> (
            None
            | ResponseFormatType0
            | ResponseFormatType1
            | ResponseFormatType2
            | Unset
        ):
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_response_format_type_0 = (
                    ResponseFormatType0.from_dict(data)
                )

                return componentsschemas_response_format_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_response_format_type_1 = (
                    ResponseFormatType1.from_dict(data)
                )

                return componentsschemas_response_format_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_response_format_type_2 = (
                    ResponseFormatType2.from_dict(data)
                )

                return componentsschemas_response_format_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(
                None
                | ResponseFormatType0
                | ResponseFormatType1
                | ResponseFormatType2
                | Unset,
                data,
            )

        response_format = _parse_response_format(d.pop("response_format", UNSET))

        def _parse_seed(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        seed = _parse_seed(d.pop("seed", UNSET))

        def _parse_stop(data: object) -> list[str] | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_stop_spec_type_1 = cast(list[str], data)

                return componentsschemas_stop_spec_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | str | Unset, data)

        stop = _parse_stop(d.pop("stop", UNSET))

        def _parse_stop_token_ids(data: object) -> list[int] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                stop_token_ids_type_0 = cast(list[int], data)

                return stop_token_ids_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | None | Unset, data)

        stop_token_ids = _parse_stop_token_ids(d.pop("stop_token_ids", UNSET))

        def _parse_stream(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        stream = _parse_stream(d.pop("stream", UNSET))

        def _parse_stream_options(data: object) -> None | StreamOptions | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                stream_options_type_1 = StreamOptions.from_dict(data)

                return stream_options_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | StreamOptions | Unset, data)

        stream_options = _parse_stream_options(d.pop("stream_options", UNSET))

        def _parse_structured_outputs(data: object) -> None | StructuredOutputs | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                structured_outputs_type_1 = StructuredOutputs.from_dict(data)

                return structured_outputs_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | StructuredOutputs | Unset, data)

        structured_outputs = _parse_structured_outputs(
            d.pop("structured_outputs", UNSET)
        )

        suffix = d.pop("suffix", UNSET)

        def _parse_temperature(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        temperature = _parse_temperature(d.pop("temperature", UNSET))

        def _parse_top_k(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        top_k = _parse_top_k(d.pop("top_k", UNSET))

        def _parse_top_p(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        top_p = _parse_top_p(d.pop("top_p", UNSET))

        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        completion_request = cls(
            model=model,
            prompt=prompt,
            best_of=best_of,
            echo=echo,
            frequency_penalty=frequency_penalty,
            guided_choice=guided_choice,
            guided_grammar=guided_grammar,
            guided_json=guided_json,
            guided_regex=guided_regex,
            ignore_eos=ignore_eos,
            logit_bias=logit_bias,
            logprobs=logprobs,
            max_tokens=max_tokens,
            min_p=min_p,
            min_tokens=min_tokens,
            n=n,
            presence_penalty=presence_penalty,
            priority=priority,
            repetition_penalty=repetition_penalty,
            response_format=response_format,
            seed=seed,
            stop=stop,
            stop_token_ids=stop_token_ids,
            stream=stream,
            stream_options=stream_options,
            structured_outputs=structured_outputs,
            suffix=suffix,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            user=user,
        )

        return completion_request
