"""The VSD's error answer: `{"errors": [{"property": P, "descriptions": [{"title": T, "description": D}]}]}`
with the HTTP status that tells the client what kind of mistake it made."""

from __future__ import annotations


class VsdError(Exception):
    def __init__(self, status: int, prop: str, title: str, description: str | None = None) -> None:
        super().__init__(f"{status} {prop}: {description or title}")
        self.status, self.prop, self.title = status, prop, title
        self.description = description or title

    def body(self) -> dict:
        return {"errors": [{"property": self.prop,
                            "descriptions": [{"title": self.title, "description": self.description}]}],
                "internalErrorCode": self.status}


def bad(prop: str, description: str, title: str = "Invalid input") -> VsdError:
    return VsdError(400, prop, title, description)


def conflict(prop: str, description: str, title: str = "Conflict") -> VsdError:
    return VsdError(409, prop, title, description)


def not_found(prop: str, description: str) -> VsdError:
    return VsdError(404, prop, "Object not found", description)


def forbidden(description: str) -> VsdError:
    return VsdError(403, "", "Permission denied", description)
