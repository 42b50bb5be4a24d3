from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="CapacityPriceObject")


@_attrs_define
class CapacityPriceObject:
    """A row of the reserved-capacity price catalog.

    Attributes:
        created_at (int):
        created_by (str): `config` or `operator:<name>`.
        currency (str): Always `usd`.
        effective_at (int): Unix seconds from which it applies (0: since the beginning).
        hardware (str): `cpu` (or `cuda` once that engine exists).
        id (str):
        micros_per_replica_hour (int): What one replica costs for one hour, micro-USD.
        object_ (str): Always `billing.capacity_price`. Example: billing.capacity_price.
    """

    created_at: int
    created_by: str
    currency: str
    effective_at: int
    hardware: str
    id: str
    micros_per_replica_hour: int
    object_: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        created_by = self.created_by

        currency = self.currency

        effective_at = self.effective_at

        hardware = self.hardware

        id = self.id

        micros_per_replica_hour = self.micros_per_replica_hour

        object_ = self.object_

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "created_by": created_by,
                "currency": currency,
                "effective_at": effective_at,
                "hardware": hardware,
                "id": id,
                "micros_per_replica_hour": micros_per_replica_hour,
                "object": object_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        created_by = d.pop("created_by")

        currency = d.pop("currency")

        effective_at = d.pop("effective_at")

        hardware = d.pop("hardware")

        id = d.pop("id")

        micros_per_replica_hour = d.pop("micros_per_replica_hour")

        object_ = d.pop("object")

        capacity_price_object = cls(
            created_at=created_at,
            created_by=created_by,
            currency=currency,
            effective_at=effective_at,
            hardware=hardware,
            id=id,
            micros_per_replica_hour=micros_per_replica_hour,
            object_=object_,
        )

        capacity_price_object.additional_properties = d
        return capacity_price_object

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
