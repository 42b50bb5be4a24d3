from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="AdjustmentCreate")


@_attrs_define
class AdjustmentCreate:
    """
    Attributes:
        amount_micros (int): Micro-USD; positive credits the organization, negative debits it. Not zero; at most
            1,000,000 USD either way.
        reason (str): Why (1 to 500 characters, not blank, no control characters); kept on the ledger entry.
    """

    amount_micros: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        amount_micros = self.amount_micros

        reason = self.reason

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "amount_micros": amount_micros,
                "reason": reason,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount_micros = d.pop("amount_micros")

        reason = d.pop("reason")

        adjustment_create = cls(
            amount_micros=amount_micros,
            reason=reason,
        )

        return adjustment_create
