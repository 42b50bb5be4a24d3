from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.response_format_type_2_type import ResponseFormatType2Type

if TYPE_CHECKING:
    from ..models.json_schema_format import JsonSchemaFormat


T = TypeVar("T", bound="ResponseFormatType2")


@_attrs_define
class ResponseFormatType2:
    """The answer is JSON valid against `json_schema.schema`.

    Attributes:
        json_schema (JsonSchemaFormat): `response_format.json_schema`.
        type_ (ResponseFormatType2Type):
    """

    json_schema: JsonSchemaFormat
    type_: ResponseFormatType2Type

    def to_dict(self) -> dict[str, Any]:
        json_schema = self.json_schema.to_dict()

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "json_schema": json_schema,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.json_schema_format import JsonSchemaFormat

        d = dict(src_dict)
        json_schema = JsonSchemaFormat.from_dict(d.pop("json_schema"))

        type_ = ResponseFormatType2Type(d.pop("type"))

        response_format_type_2 = cls(
            json_schema=json_schema,
            type_=type_,
        )

        return response_format_type_2
