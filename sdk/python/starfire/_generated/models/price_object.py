from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="PriceObject")


@_attrs_define
class PriceObject:
    """A catalog price.

    Attributes:
        cached_input_micros_per_million (int): Micro-USD per 1M prompt tokens served from the prefix cache.
        created_at (int):
        created_by (str): `config`, or `operator:<name>`.
        currency (str):
        effective_at (int): From when (Unix seconds) until the model's next price; 0 for the configured price.
        id (str):
        input_micros_per_million (int): Micro-USD per 1M uncached prompt tokens.
        model (str):
        object_ (str): Always `billing.price`.
        output_micros_per_million (int): Micro-USD per 1M generated tokens.
    """

    cached_input_micros_per_million: int
    created_at: int
    created_by: str
    currency: str
    effective_at: int
    id: str
    input_micros_per_million: int
    model: str
    object_: str
    output_micros_per_million: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cached_input_micros_per_million = self.cached_input_micros_per_million

        created_at = self.created_at

        created_by = self.created_by

        currency = self.currency

        effective_at = self.effective_at

        id = self.id

        input_micros_per_million = self.input_micros_per_million

        model = self.model

        object_ = self.object_

        output_micros_per_million = self.output_micros_per_million

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cached_input_micros_per_million": cached_input_micros_per_million,
                "created_at": created_at,
                "created_by": created_by,
                "currency": currency,
                "effective_at": effective_at,
                "id": id,
                "input_micros_per_million": input_micros_per_million,
                "model": model,
                "object": object_,
                "output_micros_per_million": output_micros_per_million,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cached_input_micros_per_million = d.pop("cached_input_micros_per_million")

        created_at = d.pop("created_at")

        created_by = d.pop("created_by")

        currency = d.pop("currency")

        effective_at = d.pop("effective_at")

        id = d.pop("id")

        input_micros_per_million = d.pop("input_micros_per_million")

        model = d.pop("model")

        object_ = d.pop("object")

        output_micros_per_million = d.pop("output_micros_per_million")

        price_object = cls(
            cached_input_micros_per_million=cached_input_micros_per_million,
            created_at=created_at,
            created_by=created_by,
            currency=currency,
            effective_at=effective_at,
            id=id,
            input_micros_per_million=input_micros_per_million,
            model=model,
            object_=object_,
            output_micros_per_million=output_micros_per_million,
        )

        price_object.additional_properties = d
        return price_object

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
