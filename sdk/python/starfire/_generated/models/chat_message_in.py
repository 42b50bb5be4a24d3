from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.content_part import ContentPart
    from ..models.tool_call_in import ToolCallIn


T = TypeVar("T", bound="ChatMessageIn")


@_attrs_define
class ChatMessageIn:
    """A chat message.

    Attributes:
        role (str): `system`, `developer` (treated as `system`), `user`, `assistant` or `tool` (a tool's
            result).
        content (list[ContentPart] | None | str | Unset):
        name (None | str | Unset): A participant's name: accepted for compatibility; templates do not see it.
        refusal (None | Unset): Not supported yet: refused with 400 unless null.
        tool_call_id (None | str | Unset): A `tool` message (and only one): the id of the call it answers, 1 to 256
            characters.
        tool_calls (list[ToolCallIn] | None | Unset): An assistant message's calls (as a response gave them).
    """

    role: str
    content: list[ContentPart] | None | str | Unset = UNSET
    name: None | str | Unset = UNSET
    refusal: None | Unset = UNSET
    tool_call_id: None | str | Unset = UNSET
    tool_calls: list[ToolCallIn] | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        role = self.role

        content: list[dict[str, Any]] | None | str | Unset
        if isinstance(self.content, Unset):
            content = UNSET
        elif isinstance(self.content, list):
            content = []
            for componentsschemas_message_content_type_1_item_data in self.content:
                componentsschemas_message_content_type_1_item = (
                    componentsschemas_message_content_type_1_item_data.to_dict()
                )
                content.append(componentsschemas_message_content_type_1_item)

        else:
            content = self.content

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        refusal = self.refusal

        tool_call_id: None | str | Unset
        if isinstance(self.tool_call_id, Unset):
            tool_call_id = UNSET
        else:
            tool_call_id = self.tool_call_id

        tool_calls: list[dict[str, Any]] | None | Unset
        if isinstance(self.tool_calls, Unset):
            tool_calls = UNSET
        elif isinstance(self.tool_calls, list):
            tool_calls = []
            for tool_calls_type_0_item_data in self.tool_calls:
                tool_calls_type_0_item = tool_calls_type_0_item_data.to_dict()
                tool_calls.append(tool_calls_type_0_item)

        else:
            tool_calls = self.tool_calls

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "role": role,
            }
        )
        if content is not UNSET:
            field_dict["content"] = content
        if name is not UNSET:
            field_dict["name"] = name
        if refusal is not UNSET:
            field_dict["refusal"] = refusal
        if tool_call_id is not UNSET:
            field_dict["tool_call_id"] = tool_call_id
        if tool_calls is not UNSET:
            field_dict["tool_calls"] = tool_calls

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.content_part import ContentPart
        from ..models.tool_call_in import ToolCallIn

        d = dict(src_dict)
        role = d.pop("role")

        def _parse_content(data: object) -> list[ContentPart] | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_message_content_type_1 = []
                _componentsschemas_message_content_type_1 = data
                for (
                    componentsschemas_message_content_type_1_item_data
                ) in _componentsschemas_message_content_type_1:
                    componentsschemas_message_content_type_1_item = (
                        ContentPart.from_dict(
                            componentsschemas_message_content_type_1_item_data
                        )
                    )

                    componentsschemas_message_content_type_1.append(
                        componentsschemas_message_content_type_1_item
                    )

                return componentsschemas_message_content_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[ContentPart] | None | str | Unset, data)

        content = _parse_content(d.pop("content", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        refusal = d.pop("refusal", UNSET)

        def _parse_tool_call_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tool_call_id = _parse_tool_call_id(d.pop("tool_call_id", UNSET))

        def _parse_tool_calls(data: object) -> list[ToolCallIn] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                tool_calls_type_0 = []
                _tool_calls_type_0 = data
                for tool_calls_type_0_item_data in _tool_calls_type_0:
                    tool_calls_type_0_item = ToolCallIn.from_dict(
                        tool_calls_type_0_item_data
                    )

                    tool_calls_type_0.append(tool_calls_type_0_item)

                return tool_calls_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[ToolCallIn] | None | Unset, data)

        tool_calls = _parse_tool_calls(d.pop("tool_calls", UNSET))

        chat_message_in = cls(
            role=role,
            content=content,
            name=name,
            refusal=refusal,
            tool_call_id=tool_call_id,
            tool_calls=tool_calls,
        )

        return chat_message_in
