from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="BudgetObject")


@_attrs_define
class BudgetObject:
    """A spend cap and what it counts.

    Attributes:
        object_ (str): Always `organization.budget`. Example: organization.budget.
        period (str): `monthly` (organization and project: spend starts again on the 1st of each month, UTC)
            or `lifetime` (API key: everything the key ever spent). Example: monthly.
        reserved_micros (int): Held by requests in flight (their maximum cost), micro-USD.
        scope (str): `organization`, `project` or `api_key`. Example: project.
        scope_id (str): The organization's, project's or key's id.
        spent_micros (int): Spent in the current period, micro-USD.
        available_micros (int | None | Unset): What new requests can still reserve, micro-USD; null without a cap.
        limit_micros (int | None | Unset): The cap in micro-USD (1 USD = 1,000,000); null when none is set.
        period_start (int | None | Unset): Unix seconds: the start of the current period (null for lifetime budgets).
        resets_at (int | None | Unset): Unix seconds: when a monthly budget starts again (null for lifetime budgets).
    """

    object_: str
    period: str
    reserved_micros: int
    scope: str
    scope_id: str
    spent_micros: int
    available_micros: int | None | Unset = UNSET
    limit_micros: int | None | Unset = UNSET
    period_start: int | None | Unset = UNSET
    resets_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        object_ = self.object_

        period = self.period

        reserved_micros = self.reserved_micros

        scope = self.scope

        scope_id = self.scope_id

        spent_micros = self.spent_micros

        available_micros: int | None | Unset
        if isinstance(self.available_micros, Unset):
            available_micros = UNSET
        else:
            available_micros = self.available_micros

        limit_micros: int | None | Unset
        if isinstance(self.limit_micros, Unset):
            limit_micros = UNSET
        else:
            limit_micros = self.limit_micros

        period_start: int | None | Unset
        if isinstance(self.period_start, Unset):
            period_start = UNSET
        else:
            period_start = self.period_start

        resets_at: int | None | Unset
        if isinstance(self.resets_at, Unset):
            resets_at = UNSET
        else:
            resets_at = self.resets_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "object": object_,
                "period": period,
                "reserved_micros": reserved_micros,
                "scope": scope,
                "scope_id": scope_id,
                "spent_micros": spent_micros,
            }
        )
        if available_micros is not UNSET:
            field_dict["available_micros"] = available_micros
        if limit_micros is not UNSET:
            field_dict["limit_micros"] = limit_micros
        if period_start is not UNSET:
            field_dict["period_start"] = period_start
        if resets_at is not UNSET:
            field_dict["resets_at"] = resets_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        object_ = d.pop("object")

        period = d.pop("period")

        reserved_micros = d.pop("reserved_micros")

        scope = d.pop("scope")

        scope_id = d.pop("scope_id")

        spent_micros = d.pop("spent_micros")

        def _parse_available_micros(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        available_micros = _parse_available_micros(d.pop("available_micros", UNSET))

        def _parse_limit_micros(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        limit_micros = _parse_limit_micros(d.pop("limit_micros", UNSET))

        def _parse_period_start(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        period_start = _parse_period_start(d.pop("period_start", UNSET))

        def _parse_resets_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        resets_at = _parse_resets_at(d.pop("resets_at", UNSET))

        budget_object = cls(
            object_=object_,
            period=period,
            reserved_micros=reserved_micros,
            scope=scope,
            scope_id=scope_id,
            spent_micros=spent_micros,
            available_micros=available_micros,
            limit_micros=limit_micros,
            period_start=period_start,
            resets_at=resets_at,
        )

        budget_object.additional_properties = d
        return budget_object

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
