from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.cost_amount import CostAmount


T = TypeVar("T", bound="CostResult")


@_attrs_define
class CostResult:
    """One result of a costs bucket.

    Attributes:
        amount (CostAmount): An amount of money.
        object_ (str): Always `organization.costs.result`.
        line_item (None | str | Unset): The model, when grouped by `line_item`.
        project_id (None | str | Unset):
    """

    amount: CostAmount
    object_: str
    line_item: None | str | Unset = UNSET
    project_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount.to_dict()

        object_ = self.object_

        line_item: None | str | Unset
        if isinstance(self.line_item, Unset):
            line_item = UNSET
        else:
            line_item = self.line_item

        project_id: None | str | Unset
        if isinstance(self.project_id, Unset):
            project_id = UNSET
        else:
            project_id = self.project_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "object": object_,
            }
        )
        if line_item is not UNSET:
            field_dict["line_item"] = line_item
        if project_id is not UNSET:
            field_dict["project_id"] = project_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.cost_amount import CostAmount

        d = dict(src_dict)
        amount = CostAmount.from_dict(d.pop("amount"))

        object_ = d.pop("object")

        def _parse_line_item(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        line_item = _parse_line_item(d.pop("line_item", UNSET))

        def _parse_project_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project_id = _parse_project_id(d.pop("project_id", UNSET))

        cost_result = cls(
            amount=amount,
            object_=object_,
            line_item=line_item,
            project_id=project_id,
        )

        cost_result.additional_properties = d
        return cost_result

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
