from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.scope import Scope
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.key_limits import KeyLimits
    from ..models.key_owner_object import KeyOwnerObject


T = TypeVar("T", bound="ApiKeyObject")


@_attrs_define
class ApiKeyObject:
    """A project API key as listed: the secret itself is never shown again after creation.

    Attributes:
        created_at (int):
        id (str):
        limits (KeyLimits): Rate-limit overrides of an API key or a project. `null` (or absent) falls back to the next
            level: key → project → the organization's plan.
        name (str):
        object_ (str): Always `organization.project.api_key`. Example: organization.project.api_key.
        owner (KeyOwnerObject): Who created a key.
        project_id (str):
        redacted_value (str): The visible start of the key, e.g. `sf-AbC123...`.
        scopes (list[Scope]):
        expires_at (int | None | Unset):
        last_used_at (int | None | Unset):
    """

    created_at: int
    id: str
    limits: KeyLimits
    name: str
    object_: str
    owner: KeyOwnerObject
    project_id: str
    redacted_value: str
    scopes: list[Scope]
    expires_at: int | None | Unset = UNSET
    last_used_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        id = self.id

        limits = self.limits.to_dict()

        name = self.name

        object_ = self.object_

        owner = self.owner.to_dict()

        project_id = self.project_id

        redacted_value = self.redacted_value

        scopes = []
        for scopes_item_data in self.scopes:
            scopes_item = scopes_item_data.value
            scopes.append(scopes_item)

        expires_at: int | None | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = self.expires_at

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
                "limits": limits,
                "name": name,
                "object": object_,
                "owner": owner,
                "project_id": project_id,
                "redacted_value": redacted_value,
                "scopes": scopes,
            }
        )
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if last_used_at is not UNSET:
            field_dict["last_used_at"] = last_used_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.key_limits import KeyLimits
        from ..models.key_owner_object import KeyOwnerObject

        d = dict(src_dict)
        created_at = d.pop("created_at")

        id = d.pop("id")

        limits = KeyLimits.from_dict(d.pop("limits"))

        name = d.pop("name")

        object_ = d.pop("object")

        owner = KeyOwnerObject.from_dict(d.pop("owner"))

        project_id = d.pop("project_id")

        redacted_value = d.pop("redacted_value")

        scopes = []
        _scopes = d.pop("scopes")
        for scopes_item_data in _scopes:
            scopes_item = Scope(scopes_item_data)

            scopes.append(scopes_item)

        def _parse_expires_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

        def _parse_last_used_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        last_used_at = _parse_last_used_at(d.pop("last_used_at", UNSET))

        api_key_object = cls(
            created_at=created_at,
            id=id,
            limits=limits,
            name=name,
            object_=object_,
            owner=owner,
            project_id=project_id,
            redacted_value=redacted_value,
            scopes=scopes,
            expires_at=expires_at,
            last_used_at=last_used_at,
        )

        api_key_object.additional_properties = d
        return api_key_object

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
