from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="TopUpObject")


@_attrs_define
class TopUpObject:
    """A prepaid top-up: a Stripe Checkout Session; the credit is added when Stripe reports the
    payment (webhook), never before.

        Attributes:
            amount_micros (int): Micro-USD (whole cents).
            created_at (int): Unix seconds.
            currency (str): Always `usd`.
            id (str):
            object_ (str): Always `billing.top_up`.
            status (str): `creating`, `open` (waiting for the payment), `completed` (credited), `expired` or
                `failed` (the payment provider refused to open the session).
            checkout_session_id (None | str | Unset): The Checkout Session's id.
            checkout_url (None | str | Unset): Where to pay (Stripe Checkout), while `open`.
            completed_at (int | None | Unset): Unix seconds, once completed.
            ledger_entry_id (None | str | Unset): The ledger entry that credited it, once completed.
    """

    amount_micros: int
    created_at: int
    currency: str
    id: str
    object_: str
    status: str
    checkout_session_id: None | str | Unset = UNSET
    checkout_url: None | str | Unset = UNSET
    completed_at: int | None | Unset = UNSET
    ledger_entry_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount_micros = self.amount_micros

        created_at = self.created_at

        currency = self.currency

        id = self.id

        object_ = self.object_

        status = self.status

        checkout_session_id: None | str | Unset
        if isinstance(self.checkout_session_id, Unset):
            checkout_session_id = UNSET
        else:
            checkout_session_id = self.checkout_session_id

        checkout_url: None | str | Unset
        if isinstance(self.checkout_url, Unset):
            checkout_url = UNSET
        else:
            checkout_url = self.checkout_url

        completed_at: int | None | Unset
        if isinstance(self.completed_at, Unset):
            completed_at = UNSET
        else:
            completed_at = self.completed_at

        ledger_entry_id: None | str | Unset
        if isinstance(self.ledger_entry_id, Unset):
            ledger_entry_id = UNSET
        else:
            ledger_entry_id = self.ledger_entry_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount_micros": amount_micros,
                "created_at": created_at,
                "currency": currency,
                "id": id,
                "object": object_,
                "status": status,
            }
        )
        if checkout_session_id is not UNSET:
            field_dict["checkout_session_id"] = checkout_session_id
        if checkout_url is not UNSET:
            field_dict["checkout_url"] = checkout_url
        if completed_at is not UNSET:
            field_dict["completed_at"] = completed_at
        if ledger_entry_id is not UNSET:
            field_dict["ledger_entry_id"] = ledger_entry_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount_micros = d.pop("amount_micros")

        created_at = d.pop("created_at")

        currency = d.pop("currency")

        id = d.pop("id")

        object_ = d.pop("object")

        status = d.pop("status")

        def _parse_checkout_session_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        checkout_session_id = _parse_checkout_session_id(
            d.pop("checkout_session_id", UNSET)
        )

        def _parse_checkout_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        checkout_url = _parse_checkout_url(d.pop("checkout_url", UNSET))

        def _parse_completed_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        completed_at = _parse_completed_at(d.pop("completed_at", UNSET))

        def _parse_ledger_entry_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        ledger_entry_id = _parse_ledger_entry_id(d.pop("ledger_entry_id", UNSET))

        top_up_object = cls(
            amount_micros=amount_micros,
            created_at=created_at,
            currency=currency,
            id=id,
            object_=object_,
            status=status,
            checkout_session_id=checkout_session_id,
            checkout_url=checkout_url,
            completed_at=completed_at,
            ledger_entry_id=ledger_entry_id,
        )

        top_up_object.additional_properties = d
        return top_up_object

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
