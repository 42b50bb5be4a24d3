from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="DetokenizeRequest")


@_attrs_define
class DetokenizeRequest:
    """
    Attributes:
        model (str):  Example: smollm2-135m-instruct.
        tokens (list[int]):
    """

    model: str
    tokens: list[int]

    def to_dict(self) -> dict[str, Any]:
        model = self.model

        tokens = self.tokens

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model": model,
                "tokens": tokens,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        model = d.pop("model")

        tokens = cast(list[int], d.pop("tokens"))

        detokenize_request = cls(
            model=model,
            tokens=tokens,
        )

        return detokenize_request
