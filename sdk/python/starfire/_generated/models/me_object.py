from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.organization_summary import OrganizationSummary
    from ..models.user_summary import UserSummary


T = TypeVar("T", bound="MeObject")


@_attrs_define
class MeObject:
    """The signed-in user.

    Attributes:
        object_ (str): Always `user`. Example: user.
        organization (OrganizationSummary):
        organizations (list[OrganizationSummary]): Every organization the user belongs to.
        user (UserSummary):
    """

    object_: str
    organization: OrganizationSummary
    organizations: list[OrganizationSummary]
    user: UserSummary
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        object_ = self.object_

        organization = self.organization.to_dict()

        organizations = []
        for organizations_item_data in self.organizations:
            organizations_item = organizations_item_data.to_dict()
            organizations.append(organizations_item)

        user = self.user.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "object": object_,
                "organization": organization,
                "organizations": organizations,
                "user": user,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.organization_summary import OrganizationSummary
        from ..models.user_summary import UserSummary

        d = dict(src_dict)
        object_ = d.pop("object")

        organization = OrganizationSummary.from_dict(d.pop("organization"))

        organizations = []
        _organizations = d.pop("organizations")
        for organizations_item_data in _organizations:
            organizations_item = OrganizationSummary.from_dict(organizations_item_data)

            organizations.append(organizations_item)

        user = UserSummary.from_dict(d.pop("user"))

        me_object = cls(
            object_=object_,
            organization=organization,
            organizations=organizations,
            user=user,
        )

        me_object.additional_properties = d
        return me_object

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
