from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PriceCreate")


@_attrs_define
class PriceCreate:
    """
    Attributes:
        cached_input_micros_per_million (int): Micro-USD per 1M prompt tokens served from the prefix cache (0 to 10^12).
        input_micros_per_million (int): Micro-USD per 1M uncached prompt tokens (0 to 10^12).
        model (str): The served model name (case-insensitive), 1 to 256 characters, no control characters.
        output_micros_per_million (int): Micro-USD per 1M generated tokens (0 to 10^12).
        currency (None | str | Unset): Only `usd` (the ledger's currency; any case).
        effective_at (int | None | Unset): When the price takes effect, Unix seconds; at least one second from now (a
            price
            never changes the past). Default: the next whole second.
    """

    cached_input_micros_per_million: int
    input_micros_per_million: int
    model: str
    output_micros_per_million: int
    currency: None | str | Unset = UNSET
    effective_at: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cached_input_micros_per_million = self.cached_input_micros_per_million

        input_micros_per_million = self.input_micros_per_million

        model = self.model

        output_micros_per_million = self.output_micros_per_million

        currency: None | str | Unset
        if isinstance(self.currency, Unset):
            currency = UNSET
        else:
            currency = self.currency

        effective_at: int | None | Unset
        if isinstance(self.effective_at, Unset):
            effective_at = UNSET
        else:
            effective_at = self.effective_at

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cached_input_micros_per_million": cached_input_micros_per_million,
                "input_micros_per_million": input_micros_per_million,
                "model": model,
                "output_micros_per_million": output_micros_per_million,
            }
        )
        if currency is not UNSET:
            field_dict["currency"] = currency
        if effective_at is not UNSET:
            field_dict["effective_at"] = effective_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cached_input_micros_per_million = d.pop("cached_input_micros_per_million")

        input_micros_per_million = d.pop("input_micros_per_million")

        model = d.pop("model")

        output_micros_per_million = d.pop("output_micros_per_million")

        def _parse_currency(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        currency = _parse_currency(d.pop("currency", UNSET))

        def _parse_effective_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        effective_at = _parse_effective_at(d.pop("effective_at", UNSET))

        price_create = cls(
            cached_input_micros_per_million=cached_input_micros_per_million,
            input_micros_per_million=input_micros_per_million,
            model=model,
            output_micros_per_million=output_micros_per_million,
            currency=currency,
            effective_at=effective_at,
        )

        return price_create
