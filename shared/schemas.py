"""Input models shared by the public endpoints. pydantic validates every input."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from shared.http import HttpError, first_validation_message

# bigint range: anything larger could never be one of our ids, and must not reach SQL.
PositiveId = Annotated[StrictInt, Field(gt=0, le=2**63 - 1)]
RazorpayId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
Signature = Annotated[str, Field(min_length=1, max_length=256)]
_RAZORPAY_ID = TypeAdapter(RazorpayId)


def is_razorpay_id(text: str) -> bool:
    """Whether `text` (from a path, say) could be one of Razorpay's ids."""
    try:
        _RAZORPAY_ID.validate_python(text)
    except ValidationError:
        return False
    return True


UNSTORABLE_TEXT = "must not contain NUL characters or unpaired surrogates"
UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")  # a surrogate left in a str has no pair


def _storable(value: str) -> str:
    # PostgreSQL text holds neither: refused here as bad input, not by the database as a 500.
    if UNSTORABLE_CHARS.search(value):
        raise ValueError(UNSTORABLE_TEXT)
    return value


# Text a person types (a reason, a note): anything PostgreSQL can store.
FreeText = Annotated[str, AfterValidator(_storable)]


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
