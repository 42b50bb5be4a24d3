from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.key_owner_object import KeyOwnerObject


T = TypeVar("T", bound="AdminKeyObject")


@_attrs_define
class AdminKeyObject:
    """An organization admin key as listed.

    Attributes:
        created_at (int):
        id (str):
        name (str):
        object_ (str): Always `organization.admin_api_key`. Example: organization.admin_api_key.
        owner (KeyOwnerObject): Who created a key.
        redacted_value (str): The visible start of the key, e.g. `sf-admin-AbC123...`.
        last_used_at (int | None | Unset):
    """

    created_at: int
    id: str
    name: str
    object_: str
    owner: KeyOwnerObject
    redacted_value: str
    last_used_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        id = self.id

        name = self.name

        object_ = self.object_

        owner = self.owner.to_dict()

        redacted_value = self.redacted_value

        last_used_at: int | None | Unset
        if isinstance(self.last_used_at, Unset):
            last_used_at = UNSET
        else:
            last_used_at = self.last_used_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "id": id,
                "name": name,
                "object": object_,
                "owner": owner,
                "redacted_value": redacted_value,
            }
        )
        if last_used_at is not UNSET:
            field_dict["last_used_at"] = last_used_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.key_owner_object import KeyOwnerObject

        d = dict(src_dict)
        created_at = d.pop("created_at")

        id = d.pop("id")

        name = d.pop("name")

        object_ = d.pop("object")

        owner = KeyOwnerObject.from_dict(d.pop("owner"))

        redacted_value = d.pop("redacted_value")

        def _parse_last_used_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        last_used_at = _parse_last_used_at(d.pop("last_used_at", UNSET))

        admin_key_object = cls(
            created_at=created_at,
            id=id,
            name=name,
            object_=object_,
            owner=owner,
            redacted_value=redacted_value,
            last_used_at=last_used_at,
        )

        admin_key_object.additional_properties = d
        return admin_key_object

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
