"""Service settings, read from ``GROUNDQA_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable about groundqa; one instance per app or CLI run."""

    model_config = SettingsConfigDict(env_prefix="GROUNDQA_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where index versions live.")
    # PostgreSQL + pgvector instead of the files in data_dir: any number of serving processes
    # on any machines share that index (README "Running past one machine").
    database_url: str | None = Field(default=None, description="postgresql://user:password@"
                                     "host:port/database; unset = the embedded store.")
    # onnx: the packaged MiniLM on ONNX Runtime, the same vectors as torch (minilm) and faster
    # here (README "Performance"); onnx-int8: quantised, with its own model name so it never
    # queries an index built with full-precision vectors.
    embedder: Literal["onnx", "minilm", "onnx-int8", "hash"] = "onnx"
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
    # Answering requests run at once (the rest queue in order); 0 = no limit. A few per
    # core keeps latency fair and the event loop responsive (see eval/load.py).
    max_concurrent_answers: int = 4
    # Slow clients: a request body must arrive whole within this (408 otherwise), and a
    # response write that the client does not read for this long closes the connection.
    # Neither holds an answer slot meanwhile (the body is read before one is taken).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    # The trained span reader and the calibrated answer-or-abstain model (service/answer/models;
    # README "Reading and abstention"). Unset paths mean the packaged files.
    reader_model: Path | None = None
    reader_threads: int | None = Field(default=None, ge=1, description="ONNX Runtime threads "
                                       "for the reader (default: ONNX Runtime's choice).")
    onnx_spinning: bool = Field(default=False, description="Let idle ONNX Runtime workers "
                                "spin instead of sleep (faster alone, slower under load: "
                                "README \"Performance\").")
    decision_model: Path | None = None
    read_passages: int = Field(default=0, ge=0, le=50, description="Retrieved passages the "
                               "reader reads; 0 = the number the decision model was fitted with.")
    min_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Answer only when the calibrated confidence "
        "reaches this; unset = the threshold fitted with the decision model.")
    # Optional LLM answer writer (any OpenAI-compatible server); unset means extractive only.
    llm_base_url: str | None = Field(default=None, description="e.g. http://localhost:11434/v1")
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = 20.0
    llm_max_tokens: int = 400
    # Answers computed at once in LLM mode (each holds a worker thread while it waits on the
    # upstream): well under the 40 threads of the server's pool, so /readyz, documents and
    # metrics always find one. Each also reads and verifies on the CPU around its upstream
    # call: with 16, /readyz took up to 4.8 s during a burst of 60 asks on 2 busy cores; with
    # 8, a median under 0.5 s (tests/service/test_llm_concurrency.py). 0 = no limit.
    llm_max_concurrent: int = Field(default=8, ge=0)
    llm_unsupported: Literal["drop", "flag"] = Field(
        default="drop", description="What to do with an LLM sentence the checker finds "
        "unsupported: remove it, or keep it marked as flagged.")

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        """Refuse anything but a PostgreSQL URL (an empty value means: no database)."""
        if value is None or not value.strip():
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("GROUNDQA_DATABASE_URL must be a postgresql:// URL")
        return value.strip()

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Accept comma-separated lists from the environment."""
        return _split_csv(value)
