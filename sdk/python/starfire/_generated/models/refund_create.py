from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="RefundCreate")


@_attrs_define
class RefundCreate:
    """
    Attributes:
        reason (str): Why (1 to 500 characters, not blank, no control characters); kept on the ledger entry.
        request_id (str): The request whose usage debit is given back.
    """

    reason: str
    request_id: str

    def to_dict(self) -> dict[str, Any]:
        reason = self.reason

        request_id = self.request_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "reason": reason,
                "request_id": request_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        reason = d.pop("reason")

        request_id = d.pop("request_id")

        refund_create = cls(
            reason=reason,
            request_id=request_id,
        )

        return refund_create
