from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.json_schema_format_schema_type_0 import JsonSchemaFormatSchemaType0


T = TypeVar("T", bound="JsonSchemaFormat")


@_attrs_define
class JsonSchemaFormat:
    """`response_format.json_schema`.

    Attributes:
        name (str): 1 to 64 letters, digits, underscores and dashes.
        description (None | str | Unset):
        schema (JsonSchemaFormatSchemaType0 | None | Unset): The JSON Schema (draft 2020-12 keywords; a keyword Starfire
            cannot enforce is a 400
            that names it). Absent: any JSON value.
        strict (bool | None | Unset): Accepted for compatibility: Starfire always enforces the schema.
    """

    name: str
    description: None | str | Unset = UNSET
    schema: JsonSchemaFormatSchemaType0 | None | Unset = UNSET
    strict: bool | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.json_schema_format_schema_type_0 import (
            JsonSchemaFormatSchemaType0,
        )

        name = self.name

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        schema: dict[str, Any] | None | Unset
        if isinstance(self.schema, Unset):
            schema = UNSET
        elif isinstance(self.schema, JsonSchemaFormatSchemaType0):
            schema = self.schema.to_dict()
        else:
            schema = self.schema

        strict: bool | None | Unset
        if isinstance(self.strict, Unset):
            strict = UNSET
        else:
            strict = self.strict

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if schema is not UNSET:
            field_dict["schema"] = schema
        if strict is not UNSET:
            field_dict["strict"] = strict

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.json_schema_format_schema_type_0 import (
            JsonSchemaFormatSchemaType0,
        )

        d = dict(src_dict)
        name = d.pop("name")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        def _parse_schema(data: object) -> JsonSchemaFormatSchemaType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                schema_type_0 = JsonSchemaFormatSchemaType0.from_dict(data)

                return schema_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(JsonSchemaFormatSchemaType0 | None | Unset, data)

        schema = _parse_schema(d.pop("schema", UNSET))

        def _parse_strict(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        strict = _parse_strict(d.pop("strict", UNSET))

        json_schema_format = cls(
            name=name,
            description=description,
            schema=schema,
            strict=strict,
        )

        return json_schema_format
