from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.invoice_line_object import InvoiceLineObject


T = TypeVar("T", bound="InvoiceObject")


@_attrs_define
class InvoiceObject:
    """A statement of one calendar month (UTC).

    Attributes:
        amount_due_micros (int): What is owed (postpaid usage), micro-USD.
        created_at (int): Finalization time (drafts: now), Unix seconds.
        credits_applied_micros (int): What prepaid credits paid of it, micro-USD.
        currency (str):
        lines (list[InvoiceLineObject]):
        object_ (str): Always `billing.invoice`.
        period (str): The month, `YYYY-MM`.
        period_end (int): Unix seconds, exclusive.
        period_start (int): Unix seconds, inclusive.
        plan (str):
        status (str): `draft` or `finalized` (never changes again).
        subtotal_micros (int): The sum of the lines, micro-USD.
        id (None | str | Unset): Null for a draft (the running statement of a period not finalized yet).
    """

    amount_due_micros: int
    created_at: int
    credits_applied_micros: int
    currency: str
    lines: list[InvoiceLineObject]
    object_: str
    period: str
    period_end: int
    period_start: int
    plan: str
    status: str
    subtotal_micros: int
    id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount_due_micros = self.amount_due_micros

        created_at = self.created_at

        credits_applied_micros = self.credits_applied_micros

        currency = self.currency

        lines = []
        for lines_item_data in self.lines:
            lines_item = lines_item_data.to_dict()
            lines.append(lines_item)

        object_ = self.object_

        period = self.period

        period_end = self.period_end

        period_start = self.period_start

        plan = self.plan

        status = self.status

        subtotal_micros = self.subtotal_micros

        id: None | str | Unset
        if isinstance(self.id, Unset):
            id = UNSET
        else:
            id = self.id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount_due_micros": amount_due_micros,
                "created_at": created_at,
                "credits_applied_micros": credits_applied_micros,
                "currency": currency,
                "lines": lines,
                "object": object_,
                "period": period,
                "period_end": period_end,
                "period_start": period_start,
                "plan": plan,
                "status": status,
                "subtotal_micros": subtotal_micros,
            }
        )
        if id is not UNSET:
            field_dict["id"] = id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.invoice_line_object import InvoiceLineObject

        d = dict(src_dict)
        amount_due_micros = d.pop("amount_due_micros")

        created_at = d.pop("created_at")

        credits_applied_micros = d.pop("credits_applied_micros")

        currency = d.pop("currency")

        lines = []
        _lines = d.pop("lines")
        for lines_item_data in _lines:
            lines_item = InvoiceLineObject.from_dict(lines_item_data)

            lines.append(lines_item)

        object_ = d.pop("object")

        period = d.pop("period")

        period_end = d.pop("period_end")

        period_start = d.pop("period_start")

        plan = d.pop("plan")

        status = d.pop("status")

        subtotal_micros = d.pop("subtotal_micros")

        def _parse_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        id = _parse_id(d.pop("id", UNSET))

        invoice_object = cls(
            amount_due_micros=amount_due_micros,
            created_at=created_at,
            credits_applied_micros=credits_applied_micros,
            currency=currency,
            lines=lines,
            object_=object_,
            period=period,
            period_end=period_end,
            period_start=period_start,
            plan=plan,
            status=status,
            subtotal_micros=subtotal_micros,
            id=id,
        )

        invoice_object.additional_properties = d
        return invoice_object

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
