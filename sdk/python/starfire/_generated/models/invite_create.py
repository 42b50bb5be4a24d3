from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.role import Role

T = TypeVar("T", bound="InviteCreate")


@_attrs_define
class InviteCreate:
    """
    Attributes:
        email (str): An address like name@example.com.
        role (Role): A member's role in a tenant, from most to least powerful.
    """

    email: str
    role: Role

    def to_dict(self) -> dict[str, Any]:
        email = self.email

        role = self.role.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "email": email,
                "role": role,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        email = d.pop("email")

        role = Role(d.pop("role"))

        invite_create = cls(
            email=email,
            role=role,
        )

        return invite_create
