from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="DeploymentEventObject")


@_attrs_define
class DeploymentEventObject:
    """One transition of a deployment.

    Attributes:
        actor (str): `user:<id>`, `api_key:<id>`, `operator:<name>` or `system`.
        created_at (int): Unix seconds.
        id (str):
        object_ (str): Always `deployment.event`. Example: deployment.event.
        to_state (str):
        from_state (None | str | Unset): Null for the first.
        message (None | str | Unset):
    """

    actor: str
    created_at: int
    id: str
    object_: str
    to_state: str
    from_state: None | str | Unset = UNSET
    message: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        actor = self.actor

        created_at = self.created_at

        id = self.id

        object_ = self.object_

        to_state = self.to_state

        from_state: None | str | Unset
        if isinstance(self.from_state, Unset):
            from_state = UNSET
        else:
            from_state = self.from_state

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "actor": actor,
                "created_at": created_at,
                "id": id,
                "object": object_,
                "to_state": to_state,
            }
        )
        if from_state is not UNSET:
            field_dict["from_state"] = from_state
        if message is not UNSET:
            field_dict["message"] = message

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        actor = d.pop("actor")

        created_at = d.pop("created_at")

        id = d.pop("id")

        object_ = d.pop("object")

        to_state = d.pop("to_state")

        def _parse_from_state(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        from_state = _parse_from_state(d.pop("from_state", UNSET))

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        deployment_event_object = cls(
            actor=actor,
            created_at=created_at,
            id=id,
            object_=object_,
            to_state=to_state,
            from_state=from_state,
            message=message,
        )

        deployment_event_object.additional_properties = d
        return deployment_event_object

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
