from enum import StrEnum


class ResponseFormatType1Type(StrEnum):
    JSON_OBJECT = "json_object"

    def __str__(self) -> str:
        return str(self.value)
