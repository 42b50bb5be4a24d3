from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ModelObject")


@_attrs_define
class ModelObject:
    """A served model.

    Attributes:
        created (int): Unix seconds when the model was loaded.
        id (str): The name to pass as `model`. Example: smollm2-135m-instruct.
        object_ (str): Always `model`.
        owned_by (str): `starfire` for shared models; the organization's id for its own deployments.
    """

    created: int
    id: str
    object_: str
    owned_by: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created = self.created

        id = self.id

        object_ = self.object_

        owned_by = self.owned_by

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created": created,
                "id": id,
                "object": object_,
                "owned_by": owned_by,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created = d.pop("created")

        id = d.pop("id")

        object_ = d.pop("object")

        owned_by = d.pop("owned_by")

        model_object = cls(
            created=created,
            id=id,
            object_=object_,
            owned_by=owned_by,
        )

        model_object.additional_properties = d
        return model_object

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
