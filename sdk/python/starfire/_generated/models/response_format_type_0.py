from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.response_format_type_0_type import ResponseFormatType0Type

T = TypeVar("T", bound="ResponseFormatType0")


@_attrs_define
class ResponseFormatType0:
    """Free text (the default).

    Attributes:
        type_ (ResponseFormatType0Type):
    """

    type_: ResponseFormatType0Type

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        type_ = ResponseFormatType0Type(d.pop("type"))

        response_format_type_0 = cls(
            type_=type_,
        )

        return response_format_type_0
