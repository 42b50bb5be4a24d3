from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.role import Role
from ..types import UNSET, Unset

T = TypeVar("T", bound="InviteObject")


@_attrs_define
class InviteObject:
    """
    Attributes:
        email (str):
        expires_at (int):
        id (str):
        invited_at (int):
        object_ (str): Always `organization.invite`. Example: organization.invite.
        role (Role): A member's role in a tenant, from most to least powerful.
        status (str): `pending`, `accepted` or `expired`. Example: pending.
        accepted_at (int | None | Unset):
    """

    email: str
    expires_at: int
    id: str
    invited_at: int
    object_: str
    role: Role
    status: str
    accepted_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        email = self.email

        expires_at = self.expires_at

        id = self.id

        invited_at = self.invited_at

        object_ = self.object_

        role = self.role.value

        status = self.status

        accepted_at: int | None | Unset
        if isinstance(self.accepted_at, Unset):
            accepted_at = UNSET
        else:
            accepted_at = self.accepted_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "email": email,
                "expires_at": expires_at,
                "id": id,
                "invited_at": invited_at,
                "object": object_,
                "role": role,
                "status": status,
            }
        )
        if accepted_at is not UNSET:
            field_dict["accepted_at"] = accepted_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        email = d.pop("email")

        expires_at = d.pop("expires_at")

        id = d.pop("id")

        invited_at = d.pop("invited_at")

        object_ = d.pop("object")

        role = Role(d.pop("role"))

        status = d.pop("status")

        def _parse_accepted_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        accepted_at = _parse_accepted_at(d.pop("accepted_at", UNSET))

        invite_object = cls(
            email=email,
            expires_at=expires_at,
            id=id,
            invited_at=invited_at,
            object_=object_,
            role=role,
            status=status,
            accepted_at=accepted_at,
        )

        invite_object.additional_properties = d
        return invite_object

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
