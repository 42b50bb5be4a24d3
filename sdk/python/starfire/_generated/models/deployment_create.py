from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.replica_range import ReplicaRange


T = TypeVar("T", bound="DeploymentCreate")


@_attrs_define
class DeploymentCreate:
    """What a new deployment asks for.

    Attributes:
        model (str): A served model (see `GET /v1/models`).
        name (str): 1 to 64 letters, digits, `-`, `_` or `.`; unique among the organization's deployments
            and different from every shared model's name.
        hardware (None | str | Unset): `cpu` (default).
        kv_cache_memory (int | None | Unset): Bytes of KV cache per replica, 4 MiB to 256 GiB (default: the
            installation's).
        max_model_len (int | None | Unset): Cap on prompt plus completion tokens, 16 to 16777216 (default: the model's).
        overflow (None | str | Unset): `none` (default) or `shared`.
        replicas (None | ReplicaRange | Unset):
    """

    model: str
    name: str
    hardware: None | str | Unset = UNSET
    kv_cache_memory: int | None | Unset = UNSET
    max_model_len: int | None | Unset = UNSET
    overflow: None | str | Unset = UNSET
    replicas: None | ReplicaRange | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.replica_range import ReplicaRange

        model = self.model

        name = self.name

        hardware: None | str | Unset
        if isinstance(self.hardware, Unset):
            hardware = UNSET
        else:
            hardware = self.hardware

        kv_cache_memory: int | None | Unset
        if isinstance(self.kv_cache_memory, Unset):
            kv_cache_memory = UNSET
        else:
            kv_cache_memory = self.kv_cache_memory

        max_model_len: int | None | Unset
        if isinstance(self.max_model_len, Unset):
            max_model_len = UNSET
        else:
            max_model_len = self.max_model_len

        overflow: None | str | Unset
        if isinstance(self.overflow, Unset):
            overflow = UNSET
        else:
            overflow = self.overflow

        replicas: dict[str, Any] | None | Unset
        if isinstance(self.replicas, Unset):
            replicas = UNSET
        elif isinstance(self.replicas, ReplicaRange):
            replicas = self.replicas.to_dict()
        else:
            replicas = self.replicas

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model": model,
                "name": name,
            }
        )
        if hardware is not UNSET:
            field_dict["hardware"] = hardware
        if kv_cache_memory is not UNSET:
            field_dict["kv_cache_memory"] = kv_cache_memory
        if max_model_len is not UNSET:
            field_dict["max_model_len"] = max_model_len
        if overflow is not UNSET:
            field_dict["overflow"] = overflow
        if replicas is not UNSET:
            field_dict["replicas"] = replicas

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.replica_range import ReplicaRange

        d = dict(src_dict)
        model = d.pop("model")

        name = d.pop("name")

        def _parse_hardware(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        hardware = _parse_hardware(d.pop("hardware", UNSET))

        def _parse_kv_cache_memory(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        kv_cache_memory = _parse_kv_cache_memory(d.pop("kv_cache_memory", UNSET))

        def _parse_max_model_len(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_model_len = _parse_max_model_len(d.pop("max_model_len", UNSET))

        def _parse_overflow(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        overflow = _parse_overflow(d.pop("overflow", UNSET))

        def _parse_replicas(data: object) -> None | ReplicaRange | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                replicas_type_1 = ReplicaRange.from_dict(data)

                return replicas_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ReplicaRange | Unset, data)

        replicas = _parse_replicas(d.pop("replicas", UNSET))

        deployment_create = cls(
            model=model,
            name=name,
            hardware=hardware,
            kv_cache_memory=kv_cache_memory,
            max_model_len=max_model_len,
            overflow=overflow,
            replicas=replicas,
        )

        return deployment_create
