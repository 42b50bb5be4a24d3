from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="KeyLimits")


@_attrs_define
class KeyLimits:
    """Rate-limit overrides of an API key or a project. `null` (or absent) falls back to the next
    level: key → project → the organization's plan.

        Attributes:
            concurrency (int | None | Unset): Requests in flight at once.
            rpm (int | None | Unset): Requests per minute.
            tpm (int | None | Unset): Tokens per minute (prompt plus `max_tokens` reserved at admission, corrected at the
                end).
    """

    concurrency: int | None | Unset = UNSET
    rpm: int | None | Unset = UNSET
    tpm: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        concurrency: int | None | Unset
        if isinstance(self.concurrency, Unset):
            concurrency = UNSET
        else:
            concurrency = self.concurrency

        rpm: int | None | Unset
        if isinstance(self.rpm, Unset):
            rpm = UNSET
        else:
            rpm = self.rpm

        tpm: int | None | Unset
        if isinstance(self.tpm, Unset):
            tpm = UNSET
        else:
            tpm = self.tpm

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if concurrency is not UNSET:
            field_dict["concurrency"] = concurrency
        if rpm is not UNSET:
            field_dict["rpm"] = rpm
        if tpm is not UNSET:
            field_dict["tpm"] = tpm

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_concurrency(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        concurrency = _parse_concurrency(d.pop("concurrency", UNSET))

        def _parse_rpm(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        rpm = _parse_rpm(d.pop("rpm", UNSET))

        def _parse_tpm(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        tpm = _parse_tpm(d.pop("tpm", UNSET))

        key_limits = cls(
            concurrency=concurrency,
            rpm=rpm,
            tpm=tpm,
        )

        return key_limits
