from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="EmbeddingRequest")


@_attrs_define
class EmbeddingRequest:
    """
    Attributes:
        input_ (list[int] | list[list[int]] | list[str] | str): `prompt`: a string, several strings, token ids, or
            several lists of token ids.
        model (str):  Example: smollm2-135m-instruct.
        dimensions (int | None | Unset): Only the model's own size is accepted (no truncation is performed).
        encoding_format (None | str | Unset): `float` (default) or `base64` (little-endian f32 bytes).
        user (None | str | Unset): An end-user id for abuse monitoring; recorded nowhere yet.
    """

    input_: list[int] | list[list[int]] | list[str] | str
    model: str
    dimensions: int | None | Unset = UNSET
    encoding_format: None | str | Unset = UNSET
    user: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        input_: list[int] | list[list[int]] | list[str] | str
        if isinstance(self.input_, list) or isinstance(self.input_, list):
            input_ = self.input_

        elif isinstance(self.input_, list):
            input_ = []
            for componentsschemas_prompt_input_type_3_item_data in self.input_:
                componentsschemas_prompt_input_type_3_item = (
                    componentsschemas_prompt_input_type_3_item_data
                )

                input_.append(componentsschemas_prompt_input_type_3_item)

        else:
            input_ = self.input_

        model = self.model

        dimensions: int | None | Unset
        if isinstance(self.dimensions, Unset):
            dimensions = UNSET
        else:
            dimensions = self.dimensions

        encoding_format: None | str | Unset
        if isinstance(self.encoding_format, Unset):
            encoding_format = UNSET
        else:
            encoding_format = self.encoding_format

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "input": input_,
                "model": model,
            }
        )
        if dimensions is not UNSET:
            field_dict["dimensions"] = dimensions
        if encoding_format is not UNSET:
            field_dict["encoding_format"] = encoding_format
        if user is not UNSET:
            field_dict["user"] = user

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_input_(
            data: object,
        ) -> list[int] | list[list[int]] | list[str] | str:
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_prompt_input_type_1 = cast(list[str], data)

                return componentsschemas_prompt_input_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_prompt_input_type_2 = cast(list[int], data)

                return componentsschemas_prompt_input_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, list):
                    raise TypeError()
                componentsschemas_prompt_input_type_3 = []
                _componentsschemas_prompt_input_type_3 = data
                for (
                    componentsschemas_prompt_input_type_3_item_data
                ) in _componentsschemas_prompt_input_type_3:
                    componentsschemas_prompt_input_type_3_item = cast(
                        list[int], componentsschemas_prompt_input_type_3_item_data
                    )

                    componentsschemas_prompt_input_type_3.append(
                        componentsschemas_prompt_input_type_3_item
                    )

                return componentsschemas_prompt_input_type_3
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | list[list[int]] | list[str] | str, data)

        input_ = _parse_input_(d.pop("input"))

        model = d.pop("model")

        def _parse_dimensions(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        dimensions = _parse_dimensions(d.pop("dimensions", UNSET))

        def _parse_encoding_format(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        encoding_format = _parse_encoding_format(d.pop("encoding_format", UNSET))

        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        embedding_request = cls(
            input_=input_,
            model=model,
            dimensions=dimensions,
            encoding_format=encoding_format,
            user=user,
        )

        return embedding_request
