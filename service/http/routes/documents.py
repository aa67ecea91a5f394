"""Documents: list, fetch, add or replace (JSON or a file upload), delete."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from corpus.errors import DocumentLoadError, InvalidRequest
from service.http.deps import AppSettings, Service
from service.http.errors import ApiError, error_responses
from service.schemas import DocumentChange, DocumentIn, DocumentList, DocumentOut

router = APIRouter(tags=["documents"])

_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 503)
# Changes can find the writer busy (409) or the disk full (507); adding reads a body, which
# can also time out (408).
_ADD_ERRORS = error_responses(400, 401, 404, 408, 409, 413, 415, 422, 503, 507)
_DELETE_ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422, 503, 507)
# The body is read by hand (JSON or multipart), so its two shapes are documented here.
_REQUEST_BODY = {"requestBody": {"content": {
    "application/json": {"schema": DocumentIn.model_json_schema()},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}}}}},
    "required": True}}


@router.get("/v1/documents", response_model=DocumentList, responses=_ERRORS)
def list_documents(svc: Service) -> DocumentList:
    """List indexed documents (metadata only)."""
    return svc.list_documents()


@router.get("/v1/documents/{doc_id}", response_model=DocumentOut, responses=_ERRORS)
def get_document(doc_id: str, svc: Service) -> DocumentOut:
    """A document's metadata and the cleaned text that citation offsets index into."""
    return svc.get_document(doc_id)


@router.post("/v1/documents", response_model=DocumentChange, responses=_ADD_ERRORS,
             openapi_extra=_REQUEST_BODY)
async def add_document(request: Request, svc: Service,
                       settings: AppSettings) -> DocumentChange:
    """Add or replace a document: JSON (text, markdown or HTML) or a file upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        document = _document_from_json(await request.body())
        return await run_in_threadpool(svc.add_document, document)
    if content_type == "multipart/form-data":
        raw, filename = await _uploaded_file(request, settings.max_upload_bytes)
        return await run_in_threadpool(svc.add_document, None, raw=raw, filename=filename)
    raise ApiError(415, "unsupported_media_type",
                    "send application/json or multipart/form-data")


@router.delete("/v1/documents/{doc_id}", response_model=DocumentChange,
               responses=_DELETE_ERRORS)
def delete_document(doc_id: str, svc: Service) -> DocumentChange:
    """Delete a document: its vectors, BM25 entries and rows, as a new index version."""
    return svc.delete_document(doc_id)


def _document_from_json(body: bytes) -> DocumentIn:
    """A ``DocumentIn`` from a JSON body: 400 if it is not JSON, 422 naming the bad field."""
    try:
        payload = json.loads(body)
    # RecursionError: JSON nested thousands deep (a 500 before).
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    try:
        return DocumentIn.model_validate(payload)
    except ValueError as exc:
        errors: list[dict[str, Any]] = getattr(exc, "errors", lambda: [])()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidRequest(f"{where}: {first.get('msg', exc)}" if where
                             else str(exc)) from None


#: Leading bytes of file formats that are not text, whatever the file is called: a PDF
#: named ``.txt`` used to be indexed as its raw bytes. (name, magic)
_NOT_TEXT = (("PDF", b"%PDF-"), ("ZIP (e.g. Word or EPUB)", b"PK\x03\x04"),
             ("PNG image", b"\x89PNG"), ("JPEG image", b"\xff\xd8\xff"),
             ("GIF image", b"GIF8"), ("RTF", b"{\\rtf"), ("gzip", b"\x1f\x8b"),
             ("OLE (old Word/Excel)", b"\xd0\xcf\x11\xe0"))


def sniff_not_text(raw: bytes) -> str | None:
    """The kind of a non-text file recognised by its first bytes, or ``None``."""
    head = raw[:16].lstrip(b"\xef\xbb\xbf \t\r\n")
    return next((kind for kind, magic in _NOT_TEXT if head.startswith(magic)), None)


async def _uploaded_file(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The bytes and name of the one multipart ``file`` field, refused (413) past ``limit``,
    (422) when there are several or the content is a binary format whatever its name."""
    form = await request.form()
    uploads = form.getlist("file")
    if len(uploads) > 1:
        # One document per request: indexing only the last part silently lost the others.
        raise InvalidRequest(f"send one 'file' part per request, not {len(uploads)}")
    upload = uploads[0] if uploads else None
    if upload is None or isinstance(upload, str):
        raise InvalidRequest("multipart upload needs a 'file' field")
    raw = await upload.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"upload is over the {limit} byte limit")
    kind = sniff_not_text(raw)
    if kind is not None:
        raise DocumentLoadError(f"{upload.filename or 'the upload'} is a {kind} file, not "
                                "text: upload .txt, .md or .html")
    return raw, upload.filename
