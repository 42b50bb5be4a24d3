from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.usage_object import UsageObject


T = TypeVar("T", bound="ChatDoneFrame")


@_attrs_define
class ChatDoneFrame:
    """Server frame `chat.done`: the request `id` ended (or was cancelled).

    Attributes:
        completion_id (str): The `chatcmpl-...` id its usage is recorded under.
        finish_reason (list[str] | str): One finish reason per choice: a plain string when there is one choice, else an
            array.
        id (str): The client's id of the request.
        model (str):
        type_ (str): Always `chat.done`.
        usage (None | Unset | UsageObject):
    """

    completion_id: str
    finish_reason: list[str] | str
    id: str
    model: str
    type_: str
    usage: None | Unset | UsageObject = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.usage_object import UsageObject

        completion_id = self.completion_id

        finish_reason: list[str] | str
        if isinstance(self.finish_reason, list):
            finish_reason = self.finish_reason

        else:
            finish_reason = self.finish_reason

        id = self.id

        model = self.model

        type_ = self.type_

        usage: dict[str, Any] | None | Unset
        if isinstance(self.usage, Unset):
            usage = UNSET
        elif isinstance(self.usage, UsageObject):
            usage = self.usage.to_dict()
        else:
            usage = self.usage

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "completion_id": completion_id,
                "finish_reason": finish_reason,
                "id": id,
                "model": model,
                "type": type_,
            }
        )
        if usage is not UNSET:
            field_dict["usage"] = usage

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.usage_object import UsageObject

        d = dict(src_dict)
        completion_id = d.pop("completion_id")

        def _parse_finish_reason(data: object) -> list[str] | str:
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_finish_reasons_type_1 = cast(list[str], data)

                return componentsschemas_finish_reasons_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | str, data)

        finish_reason = _parse_finish_reason(d.pop("finish_reason"))

        id = d.pop("id")

        model = d.pop("model")

        type_ = d.pop("type")

        def _parse_usage(data: object) -> None | Unset | UsageObject:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                usage_type_1 = UsageObject.from_dict(data)

                return usage_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UsageObject, data)

        usage = _parse_usage(d.pop("usage", UNSET))

        chat_done_frame = cls(
            completion_id=completion_id,
            finish_reason=finish_reason,
            id=id,
            model=model,
            type_=type_,
            usage=usage,
        )

        chat_done_frame.additional_properties = d
        return chat_done_frame

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
