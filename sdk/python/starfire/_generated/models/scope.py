from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"
    INFERENCE = "inference"
    USAGEREAD = "usage:read"

    def __str__(self) -> str:
        return str(self.value)
