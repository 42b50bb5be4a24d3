from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="CapacityPriceCreate")


@_attrs_define
class CapacityPriceCreate:
    """A new capacity price.

    Attributes:
        hardware (str): `cpu`.
        micros_per_replica_hour (int): Micro-USD per replica-hour, 0 to 1,000,000,000.
        effective_at (int | None | Unset): Unix seconds, at least one second from now (a price never changes the past);
            default:
            the next whole second.
    """

    hardware: str
    micros_per_replica_hour: int
    effective_at: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        hardware = self.hardware

        micros_per_replica_hour = self.micros_per_replica_hour

        effective_at: int | None | Unset
        if isinstance(self.effective_at, Unset):
            effective_at = UNSET
        else:
            effective_at = self.effective_at

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "hardware": hardware,
                "micros_per_replica_hour": micros_per_replica_hour,
            }
        )
        if effective_at is not UNSET:
            field_dict["effective_at"] = effective_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        hardware = d.pop("hardware")

        micros_per_replica_hour = d.pop("micros_per_replica_hour")

        def _parse_effective_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        effective_at = _parse_effective_at(d.pop("effective_at", UNSET))

        capacity_price_create = cls(
            hardware=hardware,
            micros_per_replica_hour=micros_per_replica_hour,
            effective_at=effective_at,
        )

        return capacity_price_create
