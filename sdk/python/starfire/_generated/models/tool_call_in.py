from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.function_call_in import FunctionCallIn


T = TypeVar("T", bound="ToolCallIn")


@_attrs_define
class ToolCallIn:
    """A call in an assistant message of the conversation (as a response gave it).

    Attributes:
        function (FunctionCallIn): The function an earlier call called, and its arguments as JSON text.
        id (str): 1 to 256 characters.
        type_ (str): Always `function`.
    """

    function: FunctionCallIn
    id: str
    type_: str

    def to_dict(self) -> dict[str, Any]:
        function = self.function.to_dict()

        id = self.id

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "function": function,
                "id": id,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.function_call_in import FunctionCallIn

        d = dict(src_dict)
        function = FunctionCallIn.from_dict(d.pop("function"))

        id = d.pop("id")

        type_ = d.pop("type")

        tool_call_in = cls(
            function=function,
            id=id,
            type_=type_,
        )

        return tool_call_in
