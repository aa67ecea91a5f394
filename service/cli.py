"""The ``groundqa`` command line: ingest, search, index info, documents, serve, ask.

Sub-commands from other packages (``groundqa eval ...``) are discovered through the
``groundqa.commands`` entry point group, so this module never imports them directly.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from corpus.errors import GroundQAError

app = typer.Typer(help="groundqa: cited answers from news articles.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
index_app = typer.Typer(help="Inspect the index.", no_args_is_help=True)
documents_app = typer.Typer(help="Manage indexed documents.", no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(documents_app, name="documents")

console = Console()
err = Console(stderr=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", "-d", envvar="GROUNDQA_DATA_DIR",
                 help="Index directory (default ./data).", show_default=False),
]


UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="GROUNDQA_URL", show_default=False,
                 help="Ask the groundqa server at this URL instead of loading the model here "
                      "(default: $GROUNDQA_URL; --url '' answers in-process)."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="GROUNDQA_API_KEY", show_default=False,
                 help="API key for --url (default: $GROUNDQA_API_KEY)."),
]


def _answerer(url: str | None, api_key: str | None, data_dir: Path | None) -> Any:
    """The server at ``url`` when one is given (no model loaded here), else the in-process
    service; both return the same response schemas."""
    if url:
        from service.remote import RemoteClient

        return RemoteClient(url, api_key)
    from service.core import QAService

    return QAService.from_settings(_settings(data_dir))


def _answer(url: str | None, api_key: str | None, data_dir: Path | None, method: str,
            request: Any) -> Any:
    """``ask`` or ``search`` through ``_answerer``; a server's refusal is one ``error:`` line."""
    from service.remote import RemoteError

    try:
        return getattr(_answerer(url, api_key, data_dir), method)(request)
    except RemoteError as exc:
        _fail(exc.message, 2)


def _settings(data_dir: Path | None, **overrides: Any):  # type: ignore[no-untyped-def]
    from service.config import Settings

    values: dict[str, Any] = dict(overrides)
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of .txt/.md/.html.")],
    data_dir: DataDirOption = None,
    index_type: Annotated[str, typer.Option(help="auto, flat or hnsw.")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    wait: Annotated[float | None, typer.Option(
        "--wait", min=0, help="Seconds to wait for another writer to finish (default: 0 for "
        "a data directory, 300 for a database that other machines write too).",
        show_default=False)] = None,
) -> None:
    """Add, replace or skip articles; writes a new index version atomically."""
    from corpus.loader import load_paths
    from index.embedding import load_embedder
    from index.ingest import IndexWriter

    settings = _settings(data_dir)
    store = _store(settings, index_type)
    report = load_paths(paths)
    for path, reason in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {reason}", highlight=False, soft_wrap=True)
        del path
    for _path, warning in report.warnings:
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False, soft_wrap=True)
    if not report.documents:
        _fail("no readable articles in the given paths", 2)
    unchanged_version = _all_unchanged(store, report.documents)
    if unchanged_version is not None:
        # Nothing to embed: answer without loading the model (a re-run takes well under 2 s).
        _print_ingest_summary(
            {"added": [], "replaced": [], "unchanged": [d.doc_id for d in report.documents],
             "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
             "index_version": unchanged_version, "chunks_embedded": 0, "seconds": {}},
            json_output)
        return
    embedder = load_embedder(settings.embedder)
    writer = IndexWriter(store, embedder, index_type=index_type)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True,
                  disable=json_output) as progress:
        task = progress.add_task("embedding chunks", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = writer.apply(report.documents, progress=update, wait_seconds=wait if wait
                              is not None else 300.0 if settings.database_url else 0.0)
    summary = {
        "added": result.added, "replaced": result.replaced, "unchanged": result.unchanged,
        "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
        "index_version": result.version, "chunks_embedded": result.chunks_embedded,
        "seconds": {k: round(v, 3) for k, v in result.timings.items()},
    }
    _print_ingest_summary(summary, json_output)


def _store(settings: Any, index_type: str = "auto") -> Any:
    """The index the settings name: the data directory, or GROUNDQA_DATABASE_URL's database."""
    from index.store import open_store

    return open_store(settings.data_dir, settings.database_url, index_type)


def _redacted(url: str) -> str:
    from index.store.postgres import redact_url

    return redact_url(url)


def _all_unchanged(store: Any, documents: list[Any]) -> str | None:
    """The current index version when it already holds every document unchanged, else None."""
    try:
        if store.current_version() is None:
            return None
        snapshot = store.open()
    except Exception:  # noqa: BLE001 - any doubt means: take the normal path
        return None
    try:
        stored = {d["doc_id"]: d["content_hash"] for d in snapshot.documents()}
        if all(stored.get(d.doc_id) == d.content_hash for d in documents):
            return str(snapshot.version)
        return None
    finally:
        close = getattr(snapshot, "close", None)
        if close is not None:
            close()


def _print_ingest_summary(summary: dict[str, Any], json_output: bool) -> None:
    if json_output:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"added {len(summary['added'])}, replaced {len(summary['replaced'])}, unchanged "
        f"{len(summary['unchanged'])}, skipped {len(summary['skipped'])} → index version "
        f"{summary['index_version']} ({summary['chunks_embedded']} chunks embedded)",
        highlight=False)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=100)] = 5,
    data_dir: DataDirOption = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Ranked passages with dense, lexical and fused scores."""
    from service.schemas import SearchRequest

    result = _answer(url, api_key, data_dir, "search", SearchRequest(query=query, top_k=min(k, 50)))
    if json_output:
        console.print_json(result.model_dump_json())
        return
    table = Table("#", "score", "dense", "bm25", "passage", show_lines=True)
    for rank, p in enumerate(result.passages, start=1):
        table.add_row(str(rank), f"{p.score:.3f}", f"{p.dense:.3f}", f"{p.lexical:.2f}",
                      f"[bold]{p.outlet}[/bold] ({p.published or 'undated'}) {p.chunk_id}\n"
                      f"{p.text[:400]}")
    console.print(table)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50)] = 5,
    data_dir: DataDirOption = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Answer a question with numbered sources (or say the articles don't)."""
    from service.schemas import AskRequest

    result = _answer(url, api_key, data_dir, "ask", AskRequest(question=question, top_k=top_k))
    if json_output:
        console.print_json(result.model_dump_json())
        return
    if not result.answerable:
        console.print(f"[yellow]{result.answer}[/yellow] [dim]({result.abstain_reason})[/dim]")
        if result.passages:
            console.print("[dim]Closest passages:[/dim]")
            for p in result.passages[:3]:
                console.print(f"  [dim]- {p.outlet} ({p.published or 'undated'}): "
                              f"{p.text[:160]}…[/dim]", highlight=False)
        return
    console.print(result.answer, highlight=False, soft_wrap=True)
    console.print()
    for c in result.citations:
        label = next((sc.support.label for s in result.sentences for sc in s.citations
                      if sc.id == c.id), "")
        console.print(f"[bold][{c.id}][/bold] {c.outlet}, {c.published or 'undated'} — "
                      f"“{c.title}” [dim]({c.doc_id} {c.source_span.start}–"
                      f"{c.source_span.end}, {label})[/dim]", highlight=False, soft_wrap=True)
    for conflict in result.conflicts:
        values = ", ".join(f"{v.value} [{v.citation}]" for v in conflict.values)
        console.print(f"[magenta]Sources differ on the {conflict.about}: {values}[/magenta]",
                      highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
    # Longer than a proxy's or client pool's idle timeout (nginx/ALB: 60 s): a server that
    # closes first races requests already sent on the connection (rare resets under load).
    keep_alive: Annotated[int, typer.Option("--timeout-keep-alive", min=1,
                                            help="Seconds an idle connection is kept.")] = 75,
    # Connections and requests at once before uvicorn answers 503: below the usual limit of
    # 1,024 open files, so a flood of slow connections is refused rather than exhausting
    # them (bodies are also timed out: GROUNDQA_BODY_TIMEOUT_SECONDS).
    limit_concurrency: Annotated[int, typer.Option(
        "--limit-concurrency", min=1,
        help="Connections and requests at once; more get 503.")] = 512,
    data_dir: DataDirOption = None,
) -> None:
    """Run the HTTP API (uvicorn)."""
    import os

    import uvicorn

    if data_dir is not None:
        os.environ["GROUNDQA_DATA_DIR"] = str(data_dir)
    settings = _settings(data_dir)
    from service.http.startup import check_index

    # Fail fast, in one line, on a missing, partial or foreign index (before uvicorn starts).
    try:
        check_index(settings)
    except GroundQAError as exc:
        _fail(exc.message, 2)
    uvicorn.run("service.asgi:app", host=host, port=port, workers=workers, log_level="info",
                timeout_keep_alive=keep_alive, limit_concurrency=limit_concurrency)


@index_app.command("info")
def index_info(data_dir: DataDirOption = None,
               json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Documents, chunks, model, dimension, version and size on disk."""
    from index.store import DataDir

    settings = _settings(data_dir)
    store = _store(settings)
    snapshot = store.open()
    m = snapshot.manifest
    size = (store.size_on_disk() if settings.database_url  # tables and indexes
            else DataDir(settings.data_dir).size_on_disk(m["version"]))
    where = {"database": _redacted(settings.database_url)} if settings.database_url \
        else {"data_dir": str(settings.data_dir)}
    info = {**where, "version": m["version"],
            "documents": m["documents"], "chunks": m["chunks"], "sentences": m["sentences"],
            "model": m["model"], "dimension": m["dimension"], "index_type": m["index_type"],
            "created_at": m["created_at"], "size_bytes": size,
            "chunking": m["chunking"]}
    if json_output:
        console.print_json(json.dumps(info))
        return
    table = Table(show_header=False)
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


@documents_app.command("list")
def documents_list(data_dir: DataDirOption = None,
                   json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List indexed documents."""
    snapshot = _store(_settings(data_dir)).open()
    documents = snapshot.documents()
    if json_output:
        # Plain print: rich would wrap long lines and colour nothing useful for a pipe.
        typer.echo(json.dumps(documents, ensure_ascii=False, indent=2, default=str))
        return
    # One document per two lines rather than a table: the id (what `documents delete`
    # takes) starts its line whole, never cut to fit a narrow terminal.
    for doc in documents:
        console.print(f"[bold]{doc['doc_id']}[/bold]  {doc['outlet']}, "
                      f"{doc['published'] or 'undated'}", highlight=False, soft_wrap=True)
        console.print(f"    {doc['title']}", highlight=False, soft_wrap=True)
    if not documents:
        console.print("no documents", highlight=False)


@documents_app.command("delete")
def documents_delete(doc_id: Annotated[str, typer.Argument()],
                     data_dir: DataDirOption = None) -> None:
    """Delete a document (vectors, BM25 entries, rows) as a new index version."""
    from index.embedding import load_embedder
    from index.ingest import IndexWriter

    settings = _settings(data_dir)
    result = IndexWriter(_store(settings), load_embedder(settings.embedder)).apply(
        delete=[doc_id], wait_seconds=300.0 if settings.database_url else 0.0)
    console.print(f"deleted {doc_id} → index version {result.version}")


def _load_plugins() -> None:
    for entry in entry_points(group="groundqa.commands"):
        try:
            sub_app = entry.load()
        except Exception as exc:  # a broken plugin must not break the core commands
            logging.getLogger(__name__).warning("cannot load command %s: %s", entry.name, exc)
            continue
        app.add_typer(sub_app, name=entry.name)


def main() -> None:
    """Entry point: run the CLI, turning user errors into one-line messages."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _load_plugins()
    try:
        outcome = app(standalone_mode=False)
        if isinstance(outcome, int) and not isinstance(outcome, bool):
            sys.exit(outcome)
    except GroundQAError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
