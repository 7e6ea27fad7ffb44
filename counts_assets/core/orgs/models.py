"""Pydantic models of an organization file. Every field is text until a validator says otherwise,
so YAML 1.1 never turns an answer like `Yes` or `211` into a boolean or a number."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

SLOTS = ("age", "gender", "ethnicity", "children_in_household", "income_level", "source")
Slot = Literal["age", "gender", "ethnicity", "children_in_household", "income_level", "source"]

ORG_ID_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def normalize_text(value: str) -> str:
    """The contract's matching rule for question names, answers and value-map keys."""
    return value.strip().casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Question = Annotated[str, AfterValidator(_not_blank)]


class Condition(_Strict):
    question: Question
    answers: list[str] = Field(min_length=1)


class InteractionFilter(_Strict):
    all_211: bool | None = None
    any_of: list[Condition] | None = None

    @field_validator("all_211", mode="before")
    @classmethod
    def _only_true(cls, value: object) -> bool | None:
        if value is None:
            return None
        if value is True or (isinstance(value, str) and value.strip() == "true"):
            return True
        raise ValueError(f"only `true` is allowed, got {value!r}")

    @model_validator(mode="after")
    def _exactly_one(self) -> InteractionFilter:
        if (self.all_211 is None) == (self.any_of is None):
            raise ValueError("exactly one of `all_211` and `any_of` must be given")
        if self.any_of is not None and not self.any_of:
            raise ValueError("`any_of` needs at least one condition")
        return self

    @property
    def all_records(self) -> bool:
        return self.all_211 is not None


class Demographic(_Strict):
    question: Question
    values: dict[str, str] | None = None

    @field_validator("values")
    @classmethod
    def _keys_distinct_after_matching(cls, values: dict[str, str] | None) -> dict[str, str] | None:
        if values is None:
            return None
        seen: dict[str, str] = {}
        for answer, sent in values.items():
            key = normalize_text(answer)
            if key in seen and values[seen[key]] != sent:
                raise ValueError(
                    f"answers {seen[key]!r} and {answer!r} match each other but map to "
                    f"different values"
                )
            seen.setdefault(key, answer)
        return values

    def normalized_values(self) -> dict[str, str] | None:
        """Value map keyed by the matching form of each answer."""
        if self.values is None:
            return None
        return {normalize_text(answer): sent for answer, sent in self.values.items()}


class Delivery(_Strict):
    remote_dir: str | None = None

    @field_validator("remote_dir")
    @classmethod
    def _relative_and_contained(cls, value: str | None) -> str | None:
        if value is None:
            return None
        segments = value.split("/")
        if value.startswith("/") or not all(
            _SAFE_SEGMENT.match(seg) and seg not in {".", ".."} for seg in segments
        ):
            raise ValueError(
                "must be a relative path of letters, digits, '.', '_' and '-' segments, "
                "without '..' (it may not leave the delivery base)"
            )
        return value


def _yaml_date(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{value!r} is not a YYYY-MM-DD date")
    return dt.date.fromisoformat(text)


YamlDate = Annotated[dt.date, BeforeValidator(_yaml_date)]


class Permission(_Strict):
    """The signed letter that lets an organization's files be shared."""

    signed_on: YamlDate
    document: Question
    prior_years: bool = False
    revoked_on: YamlDate | None = None

    @field_validator("prior_years", mode="before")
    @classmethod
    def _true_or_false(cls, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip() in ("true", "false"):
            return value.strip() == "true"
        raise ValueError("must be true or false")

    @model_validator(mode="after")
    def _revoked_after_signed(self) -> Permission:
        if self.revoked_on is not None and self.revoked_on <= self.signed_on:
            raise ValueError("revoked_on must be after signed_on")
        return self

    def in_force(self, today: dt.date) -> bool:
        return self.signed_on <= today and (self.revoked_on is None or today < self.revoked_on)


class Organization(_Strict):
    id: str = Field(pattern=ORG_ID_PATTERN)
    name: str
    timezone: str
    share_from: dt.date
    contact_forms: list[str] = Field(min_length=1)
    interaction_filter: InteractionFilter
    demographics: dict[Slot, Demographic] = Field(default_factory=dict)
    delivery: Delivery = Field(default_factory=Delivery)
    permission: Permission | None = None

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone name") from exc
        return value

    @field_validator("share_from", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> dt.date:
        return _yaml_date(value)

    @model_validator(mode="after")
    def _prior_years_agreed(self) -> Organization:
        p = self.permission
        if p is not None and not p.prior_years and self.share_from.year < p.signed_on.year:
            raise ValueError(
                f"permission: share_from {self.share_from} is before January 1 of the year the "
                f"letter was signed ({p.signed_on.year}); that needs prior_years: true"
            )
        return self

    def delivery_blocked(self, now: dt.datetime) -> str | None:
        """Why nothing may be delivered now, or None when the permission is in force."""
        today = now.astimezone(self.zone).date()
        if self.permission is None:
            return "no permission: the organization file has no signed permission letter"
        if today < self.permission.signed_on:
            return f"no permission yet: the letter takes effect on {self.permission.signed_on}"
        if not self.permission.in_force(today):
            return f"permission revoked on {self.permission.revoked_on}"
        return None

    def used_question_keys(self) -> set[str]:
        """Matching forms of the questions whose answers are read: the interaction filter's
        and the demographic slots'."""
        asked = [c.question for c in self.interaction_filter.any_of or []]
        asked += [spec.question for spec in self.demographics.values()]
        return {normalize_text(q) for q in asked}

    def permission_summary(self, now: dt.datetime) -> str:
        """The permission as the UI and the onboarding check state it."""
        blocked = self.delivery_blocked(now)
        if blocked:
            return blocked
        letter = self.permission
        assert letter is not None  # in force
        until = f", revoked from {letter.revoked_on}" if letter.revoked_on else ""
        prior = ", earlier years agreed" if letter.prior_years else ""
        return f"in force since {letter.signed_on} (letter {letter.document}{prior}{until})"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def remote_dir(self) -> str:
        return self.delivery.remote_dir or self.id
