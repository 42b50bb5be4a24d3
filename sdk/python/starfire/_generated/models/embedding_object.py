from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.embedding_object_embedding import EmbeddingObjectEmbedding


T = TypeVar("T", bound="EmbeddingObject")


@_attrs_define
class EmbeddingObject:
    """
    Attributes:
        embedding (EmbeddingObjectEmbedding): Floats, or a base64 string with `encoding_format: base64`.
        index (int):
        object_ (str): Always `embedding`.
    """

    embedding: EmbeddingObjectEmbedding
    index: int
    object_: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        embedding = self.embedding.to_dict()

        index = self.index

        object_ = self.object_

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "embedding": embedding,
                "index": index,
                "object": object_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.embedding_object_embedding import EmbeddingObjectEmbedding

        d = dict(src_dict)
        embedding = EmbeddingObjectEmbedding.from_dict(d.pop("embedding"))

        index = d.pop("index")

        object_ = d.pop("object")

        embedding_object = cls(
            embedding=embedding,
            index=index,
            object_=object_,
        )

        embedding_object.additional_properties = d
        return embedding_object

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
