from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="BudgetUpdate")


@_attrs_define
class BudgetUpdate:
    """A new cap.

    Attributes:
        limit_micros (int): The cap in micro-USD (1 USD = 1,000,000): a positive integer up to 10^15. Requests whose
            maximum cost (prompt plus `max_tokens` at the model's prices) does not fit in what is
            left are refused with 429 `insufficient_quota`.
    """

    limit_micros: int

    def to_dict(self) -> dict[str, Any]:
        limit_micros = self.limit_micros

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "limit_micros": limit_micros,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        limit_micros = d.pop("limit_micros")

        budget_update = cls(
            limit_micros=limit_micros,
        )

        return budget_update
