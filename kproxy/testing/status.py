"""``ApiError``: a failure the fake API server answers with a ``meta/v1 Status``, as kube-apiserver does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ApiError", "not_allowed", "unknown_resource"]


class ApiError(Exception):
    """A failure kube-apiserver reports as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details) if details is not None else None

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:  # {} too: clients read details.name of a 404 (kubectl debug)
            status["details"] = self.details
        status["code"] = self.code
        return status

    @classmethod
    def not_found(cls, resource: str, name: str, group: str = "") -> ApiError:
        """``apierrors.NewNotFound``: ``deployments.apps "web" not found``."""
        qualified = f"{resource}.{group}" if group else resource
        details = {"name": name, "group": group, "kind": resource} if group else {"name": name, "kind": resource}
        return cls(404, "NotFound", f'{qualified} "{name}" not found', details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


def unknown_resource() -> ApiError:
    """What kube-apiserver answers for a path it has no route for under ``/api`` or ``/apis``."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
