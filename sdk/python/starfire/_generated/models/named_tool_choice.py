from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.named_function import NamedFunction


T = TypeVar("T", bound="NamedToolChoice")


@_attrs_define
class NamedToolChoice:
    """`{"type": "function", "function": {"name": ...}}`: call this function.

    Attributes:
        function (NamedFunction): The function a named `tool_choice` calls.
        type_ (str): Always `function`.
    """

    function: NamedFunction
    type_: str

    def to_dict(self) -> dict[str, Any]:
        function = self.function.to_dict()

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "function": function,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.named_function import NamedFunction

        d = dict(src_dict)
        function = NamedFunction.from_dict(d.pop("function"))

        type_ = d.pop("type")

        named_tool_choice = cls(
            function=function,
            type_=type_,
        )

        return named_tool_choice
