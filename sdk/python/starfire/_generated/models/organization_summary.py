from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.plan import Plan
from ..models.role import Role

T = TypeVar("T", bound="OrganizationSummary")


@_attrs_define
class OrganizationSummary:
    """
    Attributes:
        id (str):
        name (str):
        plan (Plan): What a tenant pays for; the scheduler weighs tenants by it.
        role (Role): A member's role in a tenant, from most to least powerful.
    """

    id: str
    name: str
    plan: Plan
    role: Role
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        plan = self.plan.value

        role = self.role.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "name": name,
                "plan": plan,
                "role": role,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        plan = Plan(d.pop("plan"))

        role = Role(d.pop("role"))

        organization_summary = cls(
            id=id,
            name=name,
            plan=plan,
            role=role,
        )

        organization_summary.additional_properties = d
        return organization_summary

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
