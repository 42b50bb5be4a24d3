from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.function_call_object import FunctionCallObject


T = TypeVar("T", bound="ToolCallObject")


@_attrs_define
class ToolCallObject:
    """A call the model made.

    Attributes:
        function (FunctionCallObject): The function a call calls.
        id (str): `call_...`: what the `tool` message with the result names in `tool_call_id`.
        type_ (str): Always `function`.
    """

    function: FunctionCallObject
    id: str
    type_: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        function = self.function.to_dict()

        id = self.id

        type_ = self.type_

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
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
        from ..models.function_call_object import FunctionCallObject

        d = dict(src_dict)
        function = FunctionCallObject.from_dict(d.pop("function"))

        id = d.pop("id")

        type_ = d.pop("type")

        tool_call_object = cls(
            function=function,
            id=id,
            type_=type_,
        )

        tool_call_object.additional_properties = d
        return tool_call_object

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
