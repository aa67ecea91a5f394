"""Starting the server: check the index before serving, and report a failed start in one line.

A missing, partial or foreign index is a user's mistake, so it must end the process with a
message that says what to do, never a stack trace (STYLE habit 4). ``check_index`` is what
``groundqa serve`` runs before starting uvicorn; ``OneLineStartupFailure`` covers a server
started by ``uvicorn service.asgi:app`` directly, whose lifespan fails instead.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corpus.errors import EmbeddingMismatch, IndexNotFound
from index.store import Store, open_store
from service.config import Settings

MINILM_DIMENSION = 384  # all-MiniLM-L6-v2; the lifespan re-checks against the loaded model


def _expected_model(embedder: str) -> tuple[str, int]:
    """Model name and dimension an index must have, known without loading the model."""
    if embedder == "hash":
        from index.embedding import HashEmbedder

        fake = HashEmbedder()
        return fake.name, fake.dimension
    if embedder == "onnx-int8":
        from index.embedding.onnx import INT8_MODEL_NAME

        return INT8_MODEL_NAME, MINILM_DIMENSION
    from index.embedding import DEFAULT_MODEL_NAME

    # minilm (torch) and onnx give the same vectors under the same name.
    return DEFAULT_MODEL_NAME, MINILM_DIMENSION


def check_index(settings: Settings) -> str | None:
    """Open the live index as the server will (without the model); return its version.

    Raises ``IndexNotFound``, ``IndexCorrupt`` or ``EmbeddingMismatch`` with a message that says
    what to do. Returns None when there is no index and the configured choice is to start empty.
    """
    # The files in GROUNDQA_DATA_DIR, or the database of GROUNDQA_DATABASE_URL.
    store = open_store(settings.data_dir, settings.database_url)
    where = settings.data_dir if not settings.database_url else "the database"
    try:
        return _check_store(settings, store, where)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def _check_store(settings: Settings, store: Store, where: object) -> str | None:
    if store.current_version() is None:
        if settings.on_missing_index == "empty":
            return None
        raise IndexNotFound(
            f"no index in {where}: build it with `groundqa ingest corpus/articles`, "
            "or set GROUNDQA_ON_MISSING_INDEX=empty to start with an empty index"
        )
    snapshot = store.open()
    model, dimension = _expected_model(settings.embedder)
    built = (snapshot.manifest.get("model"), snapshot.manifest.get("dimension"))
    if built != (model, dimension):
        raise EmbeddingMismatch(
            f"the index in {where} was built with {built[0]} ({built[1]}-d) but "
            f"this server embeds with {model} ({dimension}-d); point GROUNDQA_DATA_DIR (or "
            "GROUNDQA_DATABASE_URL) at an index built with that model, or rebuild it with "
            "`groundqa ingest` in a new data directory"
        )
    return snapshot.version


class OneLineStartupFailure:
    """ASGI middleware: a lifespan that failed on a user error is reported in one line.

    Starlette hands the server the full traceback of a failed startup, and uvicorn logs it. When
    the lifespan recorded a ``startup_error`` on ``app.state`` (a GroundQAError it caught), that
    message replaces the traceback; uvicorn then logs it and exits non-zero.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(message: Message) -> None:
            if message.get("type") == "lifespan.startup.failed":
                state = getattr(scope.get("app"), "state", None)
                reason = getattr(state, "startup_error", None)
                if reason:
                    message = {**message, "message": f"cannot start groundqa: {reason}"}
            await send(message)

        await self.app(scope, receive, send_one_line)
