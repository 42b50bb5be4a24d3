from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="LedgerEntryObject")


@_attrs_define
class LedgerEntryObject:
    """One ledger entry and its cause.

    Attributes:
        amount_micros (int): Micro-USD; negative for debits.
        created_at (int): Unix seconds.
        currency (str): Always `usd`.
        id (str):
        kind (str): `grant`, `top_up`, `usage` (negative), `adjustment` or `refund`.
        object_ (str): Always `billing.ledger_entry`.
        actor (None | str | Unset): Who posted it: `system`, `stripe`, `operator:<name>`.
        payment_id (None | str | Unset): The payment a top-up came from.
        reason (None | str | Unset): The reason of an adjustment or refund; a description otherwise.
        refund_of (None | str | Unset): The entry a refund reverses.
        request_id (None | str | Unset): The request a usage debit is for.
    """

    amount_micros: int
    created_at: int
    currency: str
    id: str
    kind: str
    object_: str
    actor: None | str | Unset = UNSET
    payment_id: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    refund_of: None | str | Unset = UNSET
    request_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount_micros = self.amount_micros

        created_at = self.created_at

        currency = self.currency

        id = self.id

        kind = self.kind

        object_ = self.object_

        actor: None | str | Unset
        if isinstance(self.actor, Unset):
            actor = UNSET
        else:
            actor = self.actor

        payment_id: None | str | Unset
        if isinstance(self.payment_id, Unset):
            payment_id = UNSET
        else:
            payment_id = self.payment_id

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        refund_of: None | str | Unset
        if isinstance(self.refund_of, Unset):
            refund_of = UNSET
        else:
            refund_of = self.refund_of

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
                "currency": currency,
                "id": id,
                "kind": kind,
                "object": object_,
            }
        )
        if actor is not UNSET:
            field_dict["actor"] = actor
        if payment_id is not UNSET:
            field_dict["payment_id"] = payment_id
        if reason is not UNSET:
            field_dict["reason"] = reason
        if refund_of is not UNSET:
            field_dict["refund_of"] = refund_of
        if request_id is not UNSET:
            field_dict["request_id"] = request_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount_micros = d.pop("amount_micros")

        created_at = d.pop("created_at")

        currency = d.pop("currency")

        id = d.pop("id")

        kind = d.pop("kind")

        object_ = d.pop("object")

        def _parse_actor(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        actor = _parse_actor(d.pop("actor", UNSET))

        def _parse_payment_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        payment_id = _parse_payment_id(d.pop("payment_id", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        def _parse_refund_of(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        refund_of = _parse_refund_of(d.pop("refund_of", UNSET))

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        ledger_entry_object = cls(
            amount_micros=amount_micros,
            created_at=created_at,
            currency=currency,
            id=id,
            kind=kind,
            object_=object_,
            actor=actor,
            payment_id=payment_id,
            reason=reason,
            refund_of=refund_of,
            request_id=request_id,
        )

        ledger_entry_object.additional_properties = d
        return ledger_entry_object

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
