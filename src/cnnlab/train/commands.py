"""CLI sub-commands of this capability (placeholder until implemented)."""


def register(sub) -> None:  # noqa: ARG001 - filled in by the capability's implementation
    return None
