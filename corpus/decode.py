"""Bytes → text: refuse binary data, fall back from UTF-8 with a warning."""

from __future__ import annotations

from corpus.errors import DocumentLoadError


def decode_bytes(raw: bytes, name: str) -> tuple[str, list[str]]:
    """Decode file bytes to text, refusing binary data and falling back from UTF-8 with a note."""
    warnings: list[str] = []
    if not raw.strip():
        raise DocumentLoadError(f"{name}: file is empty")
    sample = raw[:8192]
    if b"\x00" in sample:
        raise DocumentLoadError(f"{name}: looks like a binary file (contains NUL bytes)")
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if controls / max(len(sample), 1) > 0.05:
        raise DocumentLoadError(f"{name}: looks like a binary file (control bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
            encoding = "windows-1252"
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            encoding = "latin-1"
        warnings.append(f"{name}: not valid UTF-8, decoded as {encoding}")
    return text, warnings
