from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="InvoiceLineObject")


@_attrs_define
class InvoiceLineObject:
    """One invoice line: a model's billed requests at one catalog price.

    Attributes:
        amount_micros (int): The sum of the requests' costs (each rounded up to the micro-dollar), micro-USD.
        cached_input_tokens (int): Prompt tokens served from the prefix cache, billed at the cached-input price.
        input_tokens (int): Prompt tokens billed at the input price.
        model (str):
        output_tokens (int):
        requests (int):
        cached_input_micros_per_million (int | None | Unset):
        description (None | str | Unset): What a line that is not tokens is (a private deployment's reserved capacity,
            `model`
            being the deployment's name); null for token lines.
        input_micros_per_million (int | None | Unset): Unit prices, micro-USD per 1M tokens.
        output_micros_per_million (int | None | Unset):
        price_id (None | str | Unset): The catalog price (null for usage older than the catalog).
    """

    amount_micros: int
    cached_input_tokens: int
    input_tokens: int
    model: str
    output_tokens: int
    requests: int
    cached_input_micros_per_million: int | None | Unset = UNSET
    description: None | str | Unset = UNSET
    input_micros_per_million: int | None | Unset = UNSET
    output_micros_per_million: int | None | Unset = UNSET
    price_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount_micros = self.amount_micros

        cached_input_tokens = self.cached_input_tokens

        input_tokens = self.input_tokens

        model = self.model

        output_tokens = self.output_tokens

        requests = self.requests

        cached_input_micros_per_million: int | None | Unset
        if isinstance(self.cached_input_micros_per_million, Unset):
            cached_input_micros_per_million = UNSET
        else:
            cached_input_micros_per_million = self.cached_input_micros_per_million

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        input_micros_per_million: int | None | Unset
        if isinstance(self.input_micros_per_million, Unset):
            input_micros_per_million = UNSET
        else:
            input_micros_per_million = self.input_micros_per_million

        output_micros_per_million: int | None | Unset
        if isinstance(self.output_micros_per_million, Unset):
            output_micros_per_million = UNSET
        else:
            output_micros_per_million = self.output_micros_per_million

        price_id: None | str | Unset
        if isinstance(self.price_id, Unset):
            price_id = UNSET
        else:
            price_id = self.price_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount_micros": amount_micros,
                "cached_input_tokens": cached_input_tokens,
                "input_tokens": input_tokens,
                "model": model,
                "output_tokens": output_tokens,
                "requests": requests,
            }
        )
        if cached_input_micros_per_million is not UNSET:
            field_dict["cached_input_micros_per_million"] = (
                cached_input_micros_per_million
            )
        if description is not UNSET:
            field_dict["description"] = description
        if input_micros_per_million is not UNSET:
            field_dict["input_micros_per_million"] = input_micros_per_million
        if output_micros_per_million is not UNSET:
            field_dict["output_micros_per_million"] = output_micros_per_million
        if price_id is not UNSET:
            field_dict["price_id"] = price_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount_micros = d.pop("amount_micros")

        cached_input_tokens = d.pop("cached_input_tokens")

        input_tokens = d.pop("input_tokens")

        model = d.pop("model")

        output_tokens = d.pop("output_tokens")

        requests = d.pop("requests")

        def _parse_cached_input_micros_per_million(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cached_input_micros_per_million = _parse_cached_input_micros_per_million(
            d.pop("cached_input_micros_per_million", UNSET)
        )

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        def _parse_input_micros_per_million(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        input_micros_per_million = _parse_input_micros_per_million(
            d.pop("input_micros_per_million", UNSET)
        )

        def _parse_output_micros_per_million(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        output_micros_per_million = _parse_output_micros_per_million(
            d.pop("output_micros_per_million", UNSET)
        )

        def _parse_price_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        price_id = _parse_price_id(d.pop("price_id", UNSET))

        invoice_line_object = cls(
            amount_micros=amount_micros,
            cached_input_tokens=cached_input_tokens,
            input_tokens=input_tokens,
            model=model,
            output_tokens=output_tokens,
            requests=requests,
            cached_input_micros_per_million=cached_input_micros_per_million,
            description=description,
            input_micros_per_million=input_micros_per_million,
            output_micros_per_million=output_micros_per_million,
            price_id=price_id,
        )

        invoice_line_object.additional_properties = d
        return invoice_line_object

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
