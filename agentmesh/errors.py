"""Domain errors of the pure middle (planner, task, prompt): no grpc here, the server boundary maps them."""

from __future__ import annotations


class InvalidInput(Exception):
    """The caller sent a request the service cannot act on; the message says what to fix."""


class NotFound(Exception):
    """The request names a team or specialist this service does not have; the message says which exist."""
