from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.usage_bucket_cost_result_results_item import (
        UsageBucketCostResultResultsItem,
    )


T = TypeVar("T", bound="UsageBucketCostResult")


@_attrs_define
class UsageBucketCostResult:
    """A time bucket and its results.

    Attributes:
        end_time (int): Unix seconds (exclusive).
        object_ (str): Always `bucket`.
        results (list[UsageBucketCostResultResultsItem]):
        start_time (int): Unix seconds.
    """

    end_time: int
    object_: str
    results: list[UsageBucketCostResultResultsItem]
    start_time: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        end_time = self.end_time

        object_ = self.object_

        results = []
        for results_item_data in self.results:
            results_item = results_item_data.to_dict()
            results.append(results_item)

        start_time = self.start_time

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "end_time": end_time,
                "object": object_,
                "results": results,
                "start_time": start_time,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.usage_bucket_cost_result_results_item import (
            UsageBucketCostResultResultsItem,
        )

        d = dict(src_dict)
        end_time = d.pop("end_time")

        object_ = d.pop("object")

        results = []
        _results = d.pop("results")
        for results_item_data in _results:
            results_item = UsageBucketCostResultResultsItem.from_dict(results_item_data)

            results.append(results_item)

        start_time = d.pop("start_time")

        usage_bucket_cost_result = cls(
            end_time=end_time,
            object_=object_,
            results=results,
            start_time=start_time,
        )

        usage_bucket_cost_result.additional_properties = d
        return usage_bucket_cost_result

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
