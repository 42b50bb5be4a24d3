from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.role import Role

T = TypeVar("T", bound="UserObject")


@_attrs_define
class UserObject:
    """A member of the organization.

    Attributes:
        added_at (int): Unix seconds when the user joined the organization.
        email (str):
        id (str):
        name (str):
        object_ (str): Always `organization.user`. Example: organization.user.
        role (Role): A member's role in a tenant, from most to least powerful.
    """

    added_at: int
    email: str
    id: str
    name: str
    object_: str
    role: Role
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        added_at = self.added_at

        email = self.email

        id = self.id

        name = self.name

        object_ = self.object_

        role = self.role.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "added_at": added_at,
                "email": email,
                "id": id,
                "name": name,
                "object": object_,
                "role": role,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        added_at = d.pop("added_at")

        email = d.pop("email")

        id = d.pop("id")

        name = d.pop("name")

        object_ = d.pop("object")

        role = Role(d.pop("role"))

        user_object = cls(
            added_at=added_at,
            email=email,
            id=id,
            name=name,
            object_=object_,
            role=role,
        )

        user_object.additional_properties = d
        return user_object

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
