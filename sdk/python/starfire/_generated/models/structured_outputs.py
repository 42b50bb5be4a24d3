from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.structured_outputs_json_type_0 import StructuredOutputsJsonType0


T = TypeVar("T", bound="StructuredOutputs")


@_attrs_define
class StructuredOutputs:
    """vLLM's `structured_outputs`: exactly one field.

    Attributes:
        choice (list[str] | None | Unset): The output is exactly one of these strings (1 to 1024 of them).
        grammar (None | str | Unset): A context-free grammar in llguidance's Lark syntax.
        json (None | StructuredOutputsJsonType0 | Unset): A JSON schema (an object, or its text).
        json_object (bool | None | Unset): `true`: any JSON object.
        regex (None | str | Unset): A regular expression (Rust `regex` syntax) the whole output matches.
    """

    choice: list[str] | None | Unset = UNSET
    grammar: None | str | Unset = UNSET
    json: None | StructuredOutputsJsonType0 | Unset = UNSET
    json_object: bool | None | Unset = UNSET
    regex: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.structured_outputs_json_type_0 import StructuredOutputsJsonType0

        choice: list[str] | None | Unset
        if isinstance(self.choice, Unset):
            choice = UNSET
        elif isinstance(self.choice, list):
            choice = self.choice

        else:
            choice = self.choice

        grammar: None | str | Unset
        if isinstance(self.grammar, Unset):
            grammar = UNSET
        else:
            grammar = self.grammar

        json: dict[str, Any] | None | Unset
        if isinstance(self.json, Unset):
            json = UNSET
        elif isinstance(self.json, StructuredOutputsJsonType0):
            json = self.json.to_dict()
        else:
            json = self.json

        json_object: bool | None | Unset
        if isinstance(self.json_object, Unset):
            json_object = UNSET
        else:
            json_object = self.json_object

        regex: None | str | Unset
        if isinstance(self.regex, Unset):
            regex = UNSET
        else:
            regex = self.regex

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if choice is not UNSET:
            field_dict["choice"] = choice
        if grammar is not UNSET:
            field_dict["grammar"] = grammar
        if json is not UNSET:
            field_dict["json"] = json
        if json_object is not UNSET:
            field_dict["json_object"] = json_object
        if regex is not UNSET:
            field_dict["regex"] = regex

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.structured_outputs_json_type_0 import StructuredOutputsJsonType0

        d = dict(src_dict)

        def _parse_choice(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                choice_type_0 = cast(list[str], data)

                return choice_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        choice = _parse_choice(d.pop("choice", UNSET))

        def _parse_grammar(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        grammar = _parse_grammar(d.pop("grammar", UNSET))

        def _parse_json(data: object) -> None | StructuredOutputsJsonType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                json_type_0 = StructuredOutputsJsonType0.from_dict(data)

                return json_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | StructuredOutputsJsonType0 | Unset, data)

        json = _parse_json(d.pop("json", UNSET))

        def _parse_json_object(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        json_object = _parse_json_object(d.pop("json_object", UNSET))

        def _parse_regex(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        regex = _parse_regex(d.pop("regex", UNSET))

        structured_outputs = cls(
            choice=choice,
            grammar=grammar,
            json=json,
            json_object=json_object,
            regex=regex,
        )

        return structured_outputs
