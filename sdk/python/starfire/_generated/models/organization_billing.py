from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.plan import Plan
from ..types import UNSET, Unset

T = TypeVar("T", bound="OrganizationBilling")


@_attrs_define
class OrganizationBilling:
    """An organization's plan and payment standing.

    Attributes:
        billing_status (str): `ok`, or `past_due` after a failed invoice payment.
        id (str): The organization's id.
        object_ (str): Always `billing.organization`.
        plan (Plan): What a tenant pays for; the scheduler weighs tenants by it.
        previous_plan (Plan): What a tenant pays for; the scheduler weighs tenants by it.
        stripe_customer_id (None | str | Unset): The Stripe customer, when there is one.
    """

    billing_status: str
    id: str
    object_: str
    plan: Plan
    previous_plan: Plan
    stripe_customer_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        billing_status = self.billing_status

        id = self.id

        object_ = self.object_

        plan = self.plan.value

        previous_plan = self.previous_plan.value

        stripe_customer_id: None | str | Unset
        if isinstance(self.stripe_customer_id, Unset):
            stripe_customer_id = UNSET
        else:
            stripe_customer_id = self.stripe_customer_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "billing_status": billing_status,
                "id": id,
                "object": object_,
                "plan": plan,
                "previous_plan": previous_plan,
            }
        )
        if stripe_customer_id is not UNSET:
            field_dict["stripe_customer_id"] = stripe_customer_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        billing_status = d.pop("billing_status")

        id = d.pop("id")

        object_ = d.pop("object")

        plan = Plan(d.pop("plan"))

        previous_plan = Plan(d.pop("previous_plan"))

        def _parse_stripe_customer_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stripe_customer_id = _parse_stripe_customer_id(
            d.pop("stripe_customer_id", UNSET)
        )

        organization_billing = cls(
            billing_status=billing_status,
            id=id,
            object_=object_,
            plan=plan,
            previous_plan=previous_plan,
            stripe_customer_id=stripe_customer_id,
        )

        organization_billing.additional_properties = d
        return organization_billing

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
