"""Input models shared by the public endpoints. pydantic validates every input."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.http import HttpError, first_validation_message

# bigint range: anything larger could never be one of our ids, and must not reach SQL.
PositiveId = Annotated[StrictInt, Field(gt=0, le=2**63 - 1)]
RazorpayId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
Signature = Annotated[str, Field(min_length=1, max_length=256)]


class Input(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def parse(model: type[Input], body: dict[str, Any], required: tuple[str, ...], missing_msg: str):
    """Validate `body` into `model`; a missing field gets the seed's exact message."""
    if any(body.get(name) is None or body.get(name) == "" for name in required):
        raise HttpError(missing_msg)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise HttpError(first_validation_message(exc)) from None


# Answers every service shares (the OpenAPI document is generated from these models).
class ErrorBody(BaseModel):  # every error answer
    message: str


class Status(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
