"""Razorpay's error shape, so the SDK raises the same exceptions it would against the real API."""

from __future__ import annotations

from typing import Any

BAD_REQUEST = "BAD_REQUEST_ERROR"
SERVER_ERROR = "SERVER_ERROR"
GATEWAY_ERROR = "GATEWAY_ERROR"


class ApiError(Exception):
    """A refusal with the HTTP status and the Razorpay error body it maps to."""

    def __init__(
        self,
        description: str,
        *,
        status: int = 400,
        code: str = BAD_REQUEST,
        field: str | None = None,
        reason: str = "input_validation_failed",
        step: str = "payment_initiation",
        source: str = "business",
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(description)
        self.description = description
        self.status = status
        self.code = code
        self.field = field
        self.reason = reason
        self.step = step
        self.source = source
        self.metadata = metadata or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "description": self.description,
            "source": self.source,
            "step": self.step,
            "reason": self.reason,
            "metadata": self.metadata,
        }
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def not_found(description: str = "The id provided does not exist", status: int = 400) -> ApiError:
    return ApiError(description, status=status, field="id")


def invalid_api_key() -> ApiError:
    return ApiError(
        "The api key provided is invalid", status=401, reason="NA", step="NA", source="NA"
    )


SERVER_ERROR_TEXT = (
    "We are facing some trouble completing your request at the moment. Please try again shortly."
)


def server_error(description: str = SERVER_ERROR_TEXT) -> ApiError:
    return ApiError(description, status=500, code=SERVER_ERROR, reason="NA", step="NA", source="NA")


def gateway_error() -> ApiError:
    return ApiError(
        "Payment processing failed due to error at bank or wallet gateway",
        status=502,
        code=GATEWAY_ERROR,
        reason="gateway_technical_error",
        step="NA",
        source="gateway",
    )
