from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.credit_entry_object import CreditEntryObject


T = TypeVar("T", bound="CreditsObject")


@_attrs_define
class CreditsObject:
    """The prepaid account.

    Attributes:
        available_micros (int): What new requests can still reserve, micro-USD.
        balance_micros (int): The ledger's sum, micro-USD.
        ledger (list[CreditEntryObject]): The ledger, oldest first.
        mode (str): `prepaid`, or `postpaid` (no prepaid account: usage is invoiced; amounts are 0).
        object_ (str): Always `organization.credits`.
        reserved_micros (int): Held by requests in flight, micro-USD.
    """

    available_micros: int
    balance_micros: int
    ledger: list[CreditEntryObject]
    mode: str
    object_: str
    reserved_micros: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available_micros = self.available_micros

        balance_micros = self.balance_micros

        ledger = []
        for ledger_item_data in self.ledger:
            ledger_item = ledger_item_data.to_dict()
            ledger.append(ledger_item)

        mode = self.mode

        object_ = self.object_

        reserved_micros = self.reserved_micros

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available_micros": available_micros,
                "balance_micros": balance_micros,
                "ledger": ledger,
                "mode": mode,
                "object": object_,
                "reserved_micros": reserved_micros,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.credit_entry_object import CreditEntryObject

        d = dict(src_dict)
        available_micros = d.pop("available_micros")

        balance_micros = d.pop("balance_micros")

        ledger = []
        _ledger = d.pop("ledger")
        for ledger_item_data in _ledger:
            ledger_item = CreditEntryObject.from_dict(ledger_item_data)

            ledger.append(ledger_item)

        mode = d.pop("mode")

        object_ = d.pop("object")

        reserved_micros = d.pop("reserved_micros")

        credits_object = cls(
            available_micros=available_micros,
            balance_micros=balance_micros,
            ledger=ledger,
            mode=mode,
            object_=object_,
            reserved_micros=reserved_micros,
        )

        credits_object.additional_properties = d
        return credits_object

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
