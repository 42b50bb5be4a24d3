from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.audit_ref import AuditRef


T = TypeVar("T", bound="AuditLogObject")


@_attrs_define
class AuditLogObject:
    """
    Attributes:
        actor (AuditRef): Who acted, or what was acted on.
        effective_at (int): Unix seconds.
        id (str):
        object_ (str): Always `organization.audit_log`. Example: organization.audit_log.
        target (AuditRef): Who acted, or what was acted on.
        type_ (str): The action, e.g. `project.created`, `api_key.deleted`, `login.succeeded`.
        ip (None | str | Unset):
        request_id (None | str | Unset):
    """

    actor: AuditRef
    effective_at: int
    id: str
    object_: str
    target: AuditRef
    type_: str
    ip: None | str | Unset = UNSET
    request_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        actor = self.actor.to_dict()

        effective_at = self.effective_at

        id = self.id

        object_ = self.object_

        target = self.target.to_dict()

        type_ = self.type_

        ip: None | str | Unset
        if isinstance(self.ip, Unset):
            ip = UNSET
        else:
            ip = self.ip

        request_id: None | str | Unset
        if isinstance(self.request_id, Unset):
            request_id = UNSET
        else:
            request_id = self.request_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "actor": actor,
                "effective_at": effective_at,
                "id": id,
                "object": object_,
                "target": target,
                "type": type_,
            }
        )
        if ip is not UNSET:
            field_dict["ip"] = ip
        if request_id is not UNSET:
            field_dict["request_id"] = request_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.audit_ref import AuditRef

        d = dict(src_dict)
        actor = AuditRef.from_dict(d.pop("actor"))

        effective_at = d.pop("effective_at")

        id = d.pop("id")

        object_ = d.pop("object")

        target = AuditRef.from_dict(d.pop("target"))

        type_ = d.pop("type")

        def _parse_ip(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        ip = _parse_ip(d.pop("ip", UNSET))

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        audit_log_object = cls(
            actor=actor,
            effective_at=effective_at,
            id=id,
            object_=object_,
            target=target,
            type_=type_,
            ip=ip,
            request_id=request_id,
        )

        audit_log_object.additional_properties = d
        return audit_log_object

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
