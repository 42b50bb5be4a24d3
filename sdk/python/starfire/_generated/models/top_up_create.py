from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TopUpCreate")


@_attrs_define
class TopUpCreate:
    """Buy credits.

    Attributes:
        amount_micros (int): Micro-USD, whole cents, within the server's bounds (by default $5 to $10,000).
        cancel_url (None | str | Unset): Where Stripe sends the payer who cancels; default the console's billing page.
        success_url (None | str | Unset): Where Stripe sends the payer after paying; default the console's billing page.
    """

    amount_micros: int
    cancel_url: None | str | Unset = UNSET
    success_url: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        amount_micros = self.amount_micros

        cancel_url: None | str | Unset
        if isinstance(self.cancel_url, Unset):
            cancel_url = UNSET
        else:
            cancel_url = self.cancel_url

        success_url: None | str | Unset
        if isinstance(self.success_url, Unset):
            success_url = UNSET
        else:
            success_url = self.success_url

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "amount_micros": amount_micros,
            }
        )
        if cancel_url is not UNSET:
            field_dict["cancel_url"] = cancel_url
        if success_url is not UNSET:
            field_dict["success_url"] = success_url

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount_micros = d.pop("amount_micros")

        def _parse_cancel_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cancel_url = _parse_cancel_url(d.pop("cancel_url", UNSET))

        def _parse_success_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        success_url = _parse_success_url(d.pop("success_url", UNSET))

        top_up_create = cls(
            amount_micros=amount_micros,
            cancel_url=cancel_url,
            success_url=success_url,
        )

        return top_up_create
