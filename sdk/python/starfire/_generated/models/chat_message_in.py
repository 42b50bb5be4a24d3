from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.content_part import ContentPart


T = TypeVar("T", bound="ChatMessageIn")


@_attrs_define
class ChatMessageIn:
    """A chat message.

    Attributes:
        content (list[ContentPart] | str): `content` of a message: a string, or an array of text parts.
        role (str): `system`, `developer` (treated as `system`), `user` or `assistant`.
    """

    content: list[ContentPart] | str
    role: str

    def to_dict(self) -> dict[str, Any]:
        content: list[dict[str, Any]] | str
        if isinstance(self.content, list):
            content = []
            for componentsschemas_message_content_type_1_item_data in self.content:
                componentsschemas_message_content_type_1_item = (
                    componentsschemas_message_content_type_1_item_data.to_dict()
                )
                content.append(componentsschemas_message_content_type_1_item)

        else:
            content = self.content

        role = self.role

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "content": content,
                "role": role,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.content_part import ContentPart

        d = dict(src_dict)

        def _parse_content(data: object) -> list[ContentPart] | str:
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
            return cast(list[ContentPart] | str, data)

        content = _parse_content(d.pop("content"))

        role = d.pop("role")

        chat_message_in = cls(
            content=content,
            role=role,
        )

        return chat_message_in
