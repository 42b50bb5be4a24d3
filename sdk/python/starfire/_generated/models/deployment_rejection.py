from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="DeploymentRejection")


@_attrs_define
class DeploymentRejection:
    """Why an operator rejects a request.

    Attributes:
        reason (str): 1 to 500 characters, not blank, no control characters; shown to the organization.
    """

    reason: str

    def to_dict(self) -> dict[str, Any]:
        reason = self.reason

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "reason": reason,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        reason = d.pop("reason")

        deployment_rejection = cls(
            reason=reason,
        )

        return deployment_rejection
