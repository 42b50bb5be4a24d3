from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.replica_range import ReplicaRange


T = TypeVar("T", bound="DeploymentObject")


@_attrs_define
class DeploymentObject:
    """A private deployment: replicas of a model that only this organization's requests reach.

    Attributes:
        created_at (int): Unix seconds.
        hardware (str): `cpu` (or `cuda` once that engine exists).
        id (str):
        kv_cache_memory (int): Bytes of KV cache per replica.
        model (str): The served model it runs.
        name (str): What requests put in `model` to reach it.
        object_ (str): Always `deployment`. Example: deployment.
        overflow (str): `none`: only its own replicas serve it; `shared`: the shared pool serves it while it
            has no ready replica.
        ready_replicas (int): Replicas that answer now.
        replicas (ReplicaRange): How many replicas run: `min` always; `max` is the most the deployment may be scaled to.
        state (str): `requested`, `rejected`, `provisioning`, `ready`, `scaling`, `stopping`, `stopped`,
            `deleting`, `deleted` or `failed`. Example: ready.
        target_replicas (int): Replicas it runs now: `replicas.min` at first, moved within `[min, max]` by the
            autoscaler as load comes and goes (and charged for).
        updated_at (int): Unix seconds of the last change of state or replicas.
        max_model_len (int | None | Unset): Cap on prompt plus completion tokens; null: the model's own.
        status_message (None | str | Unset): Why it is in its state (a failure's or rejection's reason).
    """

    created_at: int
    hardware: str
    id: str
    kv_cache_memory: int
    model: str
    name: str
    object_: str
    overflow: str
    ready_replicas: int
    replicas: ReplicaRange
    state: str
    target_replicas: int
    updated_at: int
    max_model_len: int | None | Unset = UNSET
    status_message: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        hardware = self.hardware

        id = self.id

        kv_cache_memory = self.kv_cache_memory

        model = self.model

        name = self.name

        object_ = self.object_

        overflow = self.overflow

        ready_replicas = self.ready_replicas

        replicas = self.replicas.to_dict()

        state = self.state

        target_replicas = self.target_replicas

        updated_at = self.updated_at

        max_model_len: int | None | Unset
        if isinstance(self.max_model_len, Unset):
            max_model_len = UNSET
        else:
            max_model_len = self.max_model_len

        status_message: None | str | Unset
        if isinstance(self.status_message, Unset):
            status_message = UNSET
        else:
            status_message = self.status_message

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "hardware": hardware,
                "id": id,
                "kv_cache_memory": kv_cache_memory,
                "model": model,
                "name": name,
                "object": object_,
                "overflow": overflow,
                "ready_replicas": ready_replicas,
                "replicas": replicas,
                "state": state,
                "target_replicas": target_replicas,
                "updated_at": updated_at,
            }
        )
        if max_model_len is not UNSET:
            field_dict["max_model_len"] = max_model_len
        if status_message is not UNSET:
            field_dict["status_message"] = status_message

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.replica_range import ReplicaRange

        d = dict(src_dict)
        created_at = d.pop("created_at")

        hardware = d.pop("hardware")

        id = d.pop("id")

        kv_cache_memory = d.pop("kv_cache_memory")

        model = d.pop("model")

        name = d.pop("name")

        object_ = d.pop("object")

        overflow = d.pop("overflow")

        ready_replicas = d.pop("ready_replicas")

        replicas = ReplicaRange.from_dict(d.pop("replicas"))

        state = d.pop("state")

        target_replicas = d.pop("target_replicas")

        updated_at = d.pop("updated_at")

        def _parse_max_model_len(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_model_len = _parse_max_model_len(d.pop("max_model_len", UNSET))

        def _parse_status_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        status_message = _parse_status_message(d.pop("status_message", UNSET))

        deployment_object = cls(
            created_at=created_at,
            hardware=hardware,
            id=id,
            kv_cache_memory=kv_cache_memory,
            model=model,
            name=name,
            object_=object_,
            overflow=overflow,
            ready_replicas=ready_replicas,
            replicas=replicas,
            state=state,
            target_replicas=target_replicas,
            updated_at=updated_at,
            max_model_len=max_model_len,
            status_message=status_message,
        )

        deployment_object.additional_properties = d
        return deployment_object

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
