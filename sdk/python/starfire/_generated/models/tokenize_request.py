from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.chat_message_in import ChatMessageIn
    from ..models.chat_tool import ChatTool


T = TypeVar("T", bound="TokenizeRequest")


@_attrs_define
class TokenizeRequest:
    """Text to tokenize (`prompt`), or chat messages rendered through the chat template first.

    Attributes:
        model (str):  Example: smollm2-135m-instruct.
        add_generation_prompt (bool | None | Unset): With `messages`: end with the assistant's turn opener (default
            true).
        add_special_tokens (bool | None | Unset): With `prompt`: add BOS when the model uses one (default true).
        messages (list[ChatMessageIn] | None | Unset): Chat messages (at least one); give this or `prompt`.
        prompt (None | str | Unset): Plain text; give this or `messages`.
        tools (list[ChatTool] | None | Unset): With `messages`: functions the template offers the model, rendered as a
            chat
            completion with these `tools` renders them.
    """

    model: str
    add_generation_prompt: bool | None | Unset = UNSET
    add_special_tokens: bool | None | Unset = UNSET
    messages: list[ChatMessageIn] | None | Unset = UNSET
    prompt: None | str | Unset = UNSET
    tools: list[ChatTool] | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        model = self.model

        add_generation_prompt: bool | None | Unset
        if isinstance(self.add_generation_prompt, Unset):
            add_generation_prompt = UNSET
        else:
            add_generation_prompt = self.add_generation_prompt

        add_special_tokens: bool | None | Unset
        if isinstance(self.add_special_tokens, Unset):
            add_special_tokens = UNSET
        else:
            add_special_tokens = self.add_special_tokens

        messages: list[dict[str, Any]] | None | Unset
        if isinstance(self.messages, Unset):
            messages = UNSET
        elif isinstance(self.messages, list):
            messages = []
            for messages_type_0_item_data in self.messages:
                messages_type_0_item = messages_type_0_item_data.to_dict()
                messages.append(messages_type_0_item)

        else:
            messages = self.messages

        prompt: None | str | Unset
        if isinstance(self.prompt, Unset):
            prompt = UNSET
        else:
            prompt = self.prompt

        tools: list[dict[str, Any]] | None | Unset
        if isinstance(self.tools, Unset):
            tools = UNSET
        elif isinstance(self.tools, list):
            tools = []
            for tools_type_0_item_data in self.tools:
                tools_type_0_item = tools_type_0_item_data.to_dict()
                tools.append(tools_type_0_item)

        else:
            tools = self.tools

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model": model,
            }
        )
        if add_generation_prompt is not UNSET:
            field_dict["add_generation_prompt"] = add_generation_prompt
        if add_special_tokens is not UNSET:
            field_dict["add_special_tokens"] = add_special_tokens
        if messages is not UNSET:
            field_dict["messages"] = messages
        if prompt is not UNSET:
            field_dict["prompt"] = prompt
        if tools is not UNSET:
            field_dict["tools"] = tools

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.chat_message_in import ChatMessageIn
        from ..models.chat_tool import ChatTool

        d = dict(src_dict)
        model = d.pop("model")

        def _parse_add_generation_prompt(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        add_generation_prompt = _parse_add_generation_prompt(
            d.pop("add_generation_prompt", UNSET)
        )

        def _parse_add_special_tokens(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        add_special_tokens = _parse_add_special_tokens(
            d.pop("add_special_tokens", UNSET)
        )

        def _parse_messages(data: object) -> list[ChatMessageIn] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                messages_type_0 = []
                _messages_type_0 = data
                for messages_type_0_item_data in _messages_type_0:
                    messages_type_0_item = ChatMessageIn.from_dict(
                        messages_type_0_item_data
                    )

                    messages_type_0.append(messages_type_0_item)

                return messages_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[ChatMessageIn] | None | Unset, data)

        messages = _parse_messages(d.pop("messages", UNSET))

        def _parse_prompt(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        prompt = _parse_prompt(d.pop("prompt", UNSET))

        def _parse_tools(data: object) -> list[ChatTool] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                tools_type_0 = []
                _tools_type_0 = data
                for tools_type_0_item_data in _tools_type_0:
                    tools_type_0_item = ChatTool.from_dict(tools_type_0_item_data)

                    tools_type_0.append(tools_type_0_item)

                return tools_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[ChatTool] | None | Unset, data)

        tools = _parse_tools(d.pop("tools", UNSET))

        tokenize_request = cls(
            model=model,
            add_generation_prompt=add_generation_prompt,
            add_special_tokens=add_special_tokens,
            messages=messages,
            prompt=prompt,
            tools=tools,
        )

        return tokenize_request
