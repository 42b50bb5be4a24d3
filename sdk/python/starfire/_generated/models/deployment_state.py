from enum import StrEnum


class DeploymentState(StrEnum):
    DELETED = "deleted"
    DELETING = "deleting"
    FAILED = "failed"
    PROVISIONING = "provisioning"
    READY = "ready"
    REJECTED = "rejected"
    REQUESTED = "requested"
    SCALING = "scaling"
    STOPPED = "stopped"
    STOPPING = "stopping"

    def __str__(self) -> str:
        return str(self.value)
