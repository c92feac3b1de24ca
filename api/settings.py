"""Headwater's settings: one typed object, read from the environment and
checked once at start-up."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_RECAPTCHA_VERIFY_URL = "https://www.google.com/recaptcha/api/siteverify"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseModel):
    """Every `HEADWATER_*` environment variable, with its default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = "sqlite:///var/headwater.db"
    secret_key: str | None = Field(default=None, repr=False)
    public_base_url: str | None = None
    recaptcha_verify_url: str = DEFAULT_RECAPTCHA_VERIFY_URL
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 65536
    rate_limit: Annotated[int, Field(ge=0)] = 600
    trusted_proxies: tuple[str, ...] = ()
    trigger_limit: Annotated[int, Field(ge=0)] = 3
    request_metadata_days: Annotated[int, Field(ge=1)] = 90
    delivery_webhook_url: str | None = None
    delivery_signing_secret: str | None = Field(default=None, repr=False)
    delivery_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    delivery_lease_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    log_format: Literal["text", "json"] = "text"
    #: Folder that holds `var/` (the SQLite store and the generated key).
    home: Path = Path()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in value:
            ipaddress.ip_network(proxy, strict=False)
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *, home: Path) -> Settings:
        """Read `HEADWATER_*` variables; unknown ones are ignored."""
        values: dict[str, object] = {"home": home}
        for name in cls.model_fields:
            variable = f"HEADWATER_{name.upper()}"
            if variable in environ and environ[variable] != "":
                values[name] = environ[variable]
        try:
            settings = cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"HEADWATER_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise SettingsError(f"invalid settings: {problems}") from None
        if settings.delivery_webhook_url and not settings.signing_secrets:
            msg = (
                "HEADWATER_DELIVERY_WEBHOOK_URL is set but "
                "HEADWATER_DELIVERY_SIGNING_SECRET is not; deliveries must be signed"
            )
            raise SettingsError(msg)
        return settings

    @property
    def signing_secrets(self) -> list[str]:
        """Every delivery signing secret; several during a rotation."""
        secret = self.delivery_signing_secret or ""
        return [part.strip() for part in secret.split(",") if part.strip()]

    @property
    def var_directory(self) -> Path:
        return (self.home / "var").resolve()
