from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.plan import Plan

T = TypeVar("T", bound="BalanceObject")


@_attrs_define
class BalanceObject:
    """An organization's prepaid balance.

    Attributes:
        available_micros (int): What new requests can still reserve, micro-USD.
        balance_micros (int): The ledger's sum, micro-USD (1 USD = 1,000,000).
        billing_status (str): `ok`, or `past_due` after a failed invoice payment (a postpaid organization that is
            past due is refused new requests until the invoice is paid).
        currency (str): Always `usd`.
        mode (str): `prepaid` (requests are paid from the balance), or `postpaid` (no prepaid account:
            usage is invoiced; amounts are 0).
        object_ (str): Always `billing.balance`.
        plan (Plan): What a tenant pays for; the scheduler weighs tenants by it.
        reserved_micros (int): Held by requests in flight, micro-USD.
        top_ups_available (bool): Whether credits can be bought here (`POST /v1/billing/top_ups`: Stripe is configured
            and the organization is prepaid).
    """

    available_micros: int
    balance_micros: int
    billing_status: str
    currency: str
    mode: str
    object_: str
    plan: Plan
    reserved_micros: int
    top_ups_available: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available_micros = self.available_micros

        balance_micros = self.balance_micros

        billing_status = self.billing_status

        currency = self.currency

        mode = self.mode

        object_ = self.object_

        plan = self.plan.value

        reserved_micros = self.reserved_micros

        top_ups_available = self.top_ups_available

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available_micros": available_micros,
                "balance_micros": balance_micros,
                "billing_status": billing_status,
                "currency": currency,
                "mode": mode,
                "object": object_,
                "plan": plan,
                "reserved_micros": reserved_micros,
                "top_ups_available": top_ups_available,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        available_micros = d.pop("available_micros")

        balance_micros = d.pop("balance_micros")

        billing_status = d.pop("billing_status")

        currency = d.pop("currency")

        mode = d.pop("mode")

        object_ = d.pop("object")

        plan = Plan(d.pop("plan"))

        reserved_micros = d.pop("reserved_micros")

        top_ups_available = d.pop("top_ups_available")

        balance_object = cls(
            available_micros=available_micros,
            balance_micros=balance_micros,
            billing_status=billing_status,
            currency=currency,
            mode=mode,
            object_=object_,
            plan=plan,
            reserved_micros=reserved_micros,
            top_ups_available=top_ups_available,
        )

        balance_object.additional_properties = d
        return balance_object

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
