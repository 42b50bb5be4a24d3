from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.key_limits import KeyLimits


T = TypeVar("T", bound="ProjectObject")


@_attrs_define
class ProjectObject:
    """A project: the unit that owns API keys, usage and limits.

    Attributes:
        allowed_origins (list[str]): Browser origins whose pages may call the API with this project's keys (CORS);
            empty:
            none (the default). Example: ['https://demo.example.com'].
        created_at (int): Unix seconds.
        id (str):
        limits (KeyLimits): Rate-limit overrides of an API key or a project. `null` (or absent) falls back to the next
            level: key → project → the organization's plan.
        name (str):
        object_ (str): Always `organization.project`. Example: organization.project.
        status (str): `active` or `archived`. Example: active.
        archived_at (int | None | Unset): Unix seconds, null while active.
    """

    allowed_origins: list[str]
    created_at: int
    id: str
    limits: KeyLimits
    name: str
    object_: str
    status: str
    archived_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        allowed_origins = self.allowed_origins

        created_at = self.created_at

        id = self.id

        limits = self.limits.to_dict()

        name = self.name

        object_ = self.object_

        status = self.status

        archived_at: int | None | Unset
        if isinstance(self.archived_at, Unset):
            archived_at = UNSET
        else:
            archived_at = self.archived_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "allowed_origins": allowed_origins,
                "created_at": created_at,
                "id": id,
                "limits": limits,
                "name": name,
                "object": object_,
                "status": status,
            }
        )
        if archived_at is not UNSET:
            field_dict["archived_at"] = archived_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.key_limits import KeyLimits

        d = dict(src_dict)
        allowed_origins = cast(list[str], d.pop("allowed_origins"))

        created_at = d.pop("created_at")

        id = d.pop("id")

        limits = KeyLimits.from_dict(d.pop("limits"))

        name = d.pop("name")

        object_ = d.pop("object")

        status = d.pop("status")

        def _parse_archived_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        archived_at = _parse_archived_at(d.pop("archived_at", UNSET))

        project_object = cls(
            allowed_origins=allowed_origins,
            created_at=created_at,
            id=id,
            limits=limits,
            name=name,
            object_=object_,
            status=status,
            archived_at=archived_at,
        )

        project_object.additional_properties = d
        return project_object

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
