from enum import StrEnum


class ResponseFormatType0Type(StrEnum):
    TEXT = "text"

    def __str__(self) -> str:
        return str(self.value)
