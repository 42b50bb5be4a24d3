from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.response_format_type_1_type import ResponseFormatType1Type

T = TypeVar("T", bound="ResponseFormatType1")


@_attrs_define
class ResponseFormatType1:
    """JSON mode: the answer is one JSON object.

    Attributes:
        type_ (ResponseFormatType1Type):
    """

    type_: ResponseFormatType1Type

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
        type_ = ResponseFormatType1Type(d.pop("type"))

        response_format_type_1 = cls(
            type_=type_,
        )

        return response_format_type_1
