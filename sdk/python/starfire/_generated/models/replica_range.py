from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ReplicaRange")


@_attrs_define
class ReplicaRange:
    """How many replicas run: `min` always; `max` is the most the deployment may be scaled to.

    Attributes:
        max_ (int): The most replicas (at least `min`, at most the installation's `max_replicas`); above
            `min`, the autoscaler adds replicas up to it under load and removes them when load falls.
        min_ (int): Replicas that always run (at least 1).
    """

    max_: int
    min_: int

    def to_dict(self) -> dict[str, Any]:
        max_ = self.max_

        min_ = self.min_

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "max": max_,
                "min": min_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_ = d.pop("max")

        min_ = d.pop("min")

        replica_range = cls(
            max_=max_,
            min_=min_,
        )

        return replica_range
