from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="CompletionsUsageResult")


@_attrs_define
class CompletionsUsageResult:
    """One result of a completions usage bucket.

    Attributes:
        input_audio_tokens (int):
        input_cached_tokens (int):
        input_tokens (int):
        num_model_requests (int):
        object_ (str): Always `organization.usage.completions.result`.
        output_audio_tokens (int):
        output_tokens (int):
        api_key_id (None | str | Unset): Set when grouped by `api_key_id`.
        batch (bool | None | Unset): Always null (no batch API).
        model (None | str | Unset): Set when grouped by `model`.
        project_id (None | str | Unset): Set when grouped by `project_id`.
        user_id (None | str | Unset): Always null (usage is not attributed to users).
    """

    input_audio_tokens: int
    input_cached_tokens: int
    input_tokens: int
    num_model_requests: int
    object_: str
    output_audio_tokens: int
    output_tokens: int
    api_key_id: None | str | Unset = UNSET
    batch: bool | None | Unset = UNSET
    model: None | str | Unset = UNSET
    project_id: None | str | Unset = UNSET
    user_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        input_audio_tokens = self.input_audio_tokens

        input_cached_tokens = self.input_cached_tokens

        input_tokens = self.input_tokens

        num_model_requests = self.num_model_requests

        object_ = self.object_

        output_audio_tokens = self.output_audio_tokens

        output_tokens = self.output_tokens

        api_key_id: None | str | Unset
        if isinstance(self.api_key_id, Unset):
            api_key_id = UNSET
        else:
            api_key_id = self.api_key_id

        batch: bool | None | Unset
        if isinstance(self.batch, Unset):
            batch = UNSET
        else:
            batch = self.batch

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        project_id: None | str | Unset
        if isinstance(self.project_id, Unset):
            project_id = UNSET
        else:
            project_id = self.project_id

        user_id: None | str | Unset
        if isinstance(self.user_id, Unset):
            user_id = UNSET
        else:
            user_id = self.user_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "input_audio_tokens": input_audio_tokens,
                "input_cached_tokens": input_cached_tokens,
                "input_tokens": input_tokens,
                "num_model_requests": num_model_requests,
                "object": object_,
                "output_audio_tokens": output_audio_tokens,
                "output_tokens": output_tokens,
            }
        )
        if api_key_id is not UNSET:
            field_dict["api_key_id"] = api_key_id
        if batch is not UNSET:
            field_dict["batch"] = batch
        if model is not UNSET:
            field_dict["model"] = model
        if project_id is not UNSET:
            field_dict["project_id"] = project_id
        if user_id is not UNSET:
            field_dict["user_id"] = user_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        input_audio_tokens = d.pop("input_audio_tokens")

        input_cached_tokens = d.pop("input_cached_tokens")

        input_tokens = d.pop("input_tokens")

        num_model_requests = d.pop("num_model_requests")

        object_ = d.pop("object")

        output_audio_tokens = d.pop("output_audio_tokens")

        output_tokens = d.pop("output_tokens")

        def _parse_api_key_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        api_key_id = _parse_api_key_id(d.pop("api_key_id", UNSET))

        def _parse_batch(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        batch = _parse_batch(d.pop("batch", UNSET))

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        def _parse_project_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project_id = _parse_project_id(d.pop("project_id", UNSET))

        def _parse_user_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user_id = _parse_user_id(d.pop("user_id", UNSET))

        completions_usage_result = cls(
            input_audio_tokens=input_audio_tokens,
            input_cached_tokens=input_cached_tokens,
            input_tokens=input_tokens,
            num_model_requests=num_model_requests,
            object_=object_,
            output_audio_tokens=output_audio_tokens,
            output_tokens=output_tokens,
            api_key_id=api_key_id,
            batch=batch,
            model=model,
            project_id=project_id,
            user_id=user_id,
        )

        completions_usage_result.additional_properties = d
        return completions_usage_result

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
