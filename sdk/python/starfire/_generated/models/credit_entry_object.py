from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="CreditEntryObject")


@_attrs_define
class CreditEntryObject:
    """One ledger entry.

    Attributes:
        amount_micros (int): Micro-units of USD (1 USD = 1,000,000); negative for debits.
        created_at (int): Unix seconds.
        id (str):
        kind (str): `grant`, `top_up`, `usage` (negative) or `adjustment`.
        request_id (None | str | Unset): The request a usage debit is for.
    """

    amount_micros: int
    created_at: int
    id: str
    kind: str
    request_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount_micros = self.amount_micros

        created_at = self.created_at

        id = self.id

        kind = self.kind

        request_id: None | str | Unset
        if isinstance(self.request_id, Unset):
            request_id = UNSET
        else:
            request_id = self.request_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount_micros": amount_micros,
                "created_at": created_at,
                "id": id,
                "kind": kind,
            }
        )
        if request_id is not UNSET:
            field_dict["request_id"] = request_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount_micros = d.pop("amount_micros")

        created_at = d.pop("created_at")

        id = d.pop("id")

        kind = d.pop("kind")

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        credit_entry_object = cls(
            amount_micros=amount_micros,
            created_at=created_at,
            id=id,
            kind=kind,
            request_id=request_id,
        )

        credit_entry_object.additional_properties = d
        return credit_entry_object

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
