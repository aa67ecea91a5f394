"""Service settings, read from ``GROUNDQA_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable about groundqa; one instance per app or CLI run."""

    model_config = SettingsConfigDict(env_prefix="GROUNDQA_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where index versions live.")
    embedder: Literal["minilm", "hash"] = "minilm"
    index_type: Literal["auto", "flat", "hnsw"] = "auto"
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 2 * 1024 * 1024
    max_upload_bytes: int = 5 * 1024 * 1024
    max_question_chars: int = 1000
    max_top_k: int = 50
    default_top_k: int = 5
    on_missing_index: Literal["fail", "empty"] = "fail"
    reload_check_seconds: float = 0.5

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Accept comma-separated lists from the environment."""
        return _split_csv(value)
