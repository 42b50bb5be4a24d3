from enum import StrEnum


class Plan(StrEnum):
    ENTERPRISE = "enterprise"
    FREE = "free"
    PAY_AS_YOU_GO = "pay_as_you_go"

    def __str__(self) -> str:
        return str(self.value)
