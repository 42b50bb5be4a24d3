from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.chat_delta import ChatDelta
    from ..models.choice_logprobs import ChoiceLogprobs


T = TypeVar("T", bound="ChatDeltaFrame")


@_attrs_define
class ChatDeltaFrame:
    """Server frame `chat.delta`: new output of one choice of the request `id`.

    Attributes:
        delta (ChatDelta): What a chunk adds to a choice's message.
        id (str): The client's id of the request.
        index (int): Which of the `n` choices.
        type_ (str): Always `chat.delta`.
        logprobs (ChoiceLogprobs | None | Unset):
    """

    delta: ChatDelta
    id: str
    index: int
    type_: str
    logprobs: ChoiceLogprobs | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.choice_logprobs import ChoiceLogprobs

        delta = self.delta.to_dict()

        id = self.id

        index = self.index

        type_ = self.type_

        logprobs: dict[str, Any] | None | Unset
        if isinstance(self.logprobs, Unset):
            logprobs = UNSET
        elif isinstance(self.logprobs, ChoiceLogprobs):
            logprobs = self.logprobs.to_dict()
        else:
            logprobs = self.logprobs

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "delta": delta,
                "id": id,
                "index": index,
                "type": type_,
            }
        )
        if logprobs is not UNSET:
            field_dict["logprobs"] = logprobs

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.chat_delta import ChatDelta
        from ..models.choice_logprobs import ChoiceLogprobs

        d = dict(src_dict)
        delta = ChatDelta.from_dict(d.pop("delta"))

        id = d.pop("id")

        index = d.pop("index")

        type_ = d.pop("type")

        def _parse_logprobs(data: object) -> ChoiceLogprobs | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                logprobs_type_1 = ChoiceLogprobs.from_dict(data)

                return logprobs_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ChoiceLogprobs | None | Unset, data)

        logprobs = _parse_logprobs(d.pop("logprobs", UNSET))

        chat_delta_frame = cls(
            delta=delta,
            id=id,
            index=index,
            type_=type_,
            logprobs=logprobs,
        )

        chat_delta_frame.additional_properties = d
        return chat_delta_frame

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
