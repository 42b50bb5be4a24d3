from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.replica_range import ReplicaRange


T = TypeVar("T", bound="DeploymentUpdate")


@_attrs_define
class DeploymentUpdate:
    """New replicas for a deployment.

    Attributes:
        replicas (ReplicaRange): How many replicas run: `min` always; `max` is the most the deployment may be scaled to.
    """

    replicas: ReplicaRange

    def to_dict(self) -> dict[str, Any]:
        replicas = self.replicas.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "replicas": replicas,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.replica_range import ReplicaRange

        d = dict(src_dict)
        replicas = ReplicaRange.from_dict(d.pop("replicas"))

        deployment_update = cls(
            replicas=replicas,
        )

        return deployment_update
