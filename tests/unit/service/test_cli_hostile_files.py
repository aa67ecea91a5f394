"""Issue 16 through the CLI: ``groundqa ingest`` of hostile files never shows a traceback.

Every file either ingests (exit 0) or is skipped with a one-line reason, and the run ends
with exit 0 or one ``error:`` line and a non-zero exit. The property test drives ``main()``
in-process (the fake embedder, no model); one run of the real ``groundqa`` executable checks
the same from the outside.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from service import cli

ISSUE_16_TEXT = ("\ud878\udd76a\ud8c9\udd89\u00fcf\u00bc\u00f8X\ud9f2\udf64\u00b3\ud8ca\udc0d")
PROSE = ("The harbour authority said on Tuesday that the repairs to the breakwater had cost "
         "twelve million euros in all.")
_PIECES = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.sampled_from(["<p>", "</p>", "<html><body>", "<!--", "<script>x</script>", "&#xd800;",
                     "# ", "**", "\n\n", " ", "\x00"]),
    st.just(f" {PROSE} "))
TEXTS = st.lists(_PIECES, max_size=40).map("".join)


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``groundqa <args>`` in-process: its exit code and everything it printed."""
    monkeypatch.setattr(sys, "argv", ["groundqa", *args])
    monkeypatch.setattr(cli, "_load_plugins", lambda: None)  # eval/ is not under test here
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def check_run(code: int, output: str) -> None:
    """Exit 0, or exactly one ``error:`` line and a non-zero exit; never a traceback."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if code == 0:
        assert errors == [], output
    else:
        assert len(errors) == 1, output


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data directory and the fake embedder for in-process CLI runs."""
    monkeypatch.setenv("GROUNDQA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GROUNDQA_EMBEDDER", "hash")
    return tmp_path


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=TEXTS, suffix=st.sampled_from([".txt", ".md", ".html"]),
       keep_surrogates=st.booleans())
def test_ingest_of_any_unicode_file(cli_env: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], text: str, suffix: str,
                                    keep_surrogates: bool) -> None:
    path = cli_env / f"article{suffix}"
    # Lone surrogates either as their (invalid UTF-8) bytes, or dropped.
    raw = text.encode("utf-8", "surrogatepass" if keep_surrogates else "ignore")
    path.write_bytes(raw)
    code, output = run_cli(["ingest", str(path)], monkeypatch, capsys)
    event(f"exit {code}")
    check_run(code, output)


def test_ingest_of_the_issue_16_file(cli_env: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_env / "probe1.html"
    path.write_bytes(ISSUE_16_TEXT.encode("utf-8", "surrogatepass"))
    code, output = run_cli(["ingest", str(path)], monkeypatch, capsys)
    check_run(code, output)
    assert code == 2 and "skipped" in output


def test_an_extractor_failure_skips_the_file(cli_env: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import trafilatura

    def missing_cleaner(*args: object, **kwargs: object) -> None:
        raise ImportError("lxml.html.clean module is now a separate project lxml_html_clean")

    monkeypatch.setattr(trafilatura, "extract", missing_cleaner)
    page = cli_env / "page.html"
    page.write_text(f"<html><body><p>{PROSE}</p></body></html>", encoding="utf-8")
    note = cli_env / "note.txt"
    note.write_text(PROSE, encoding="utf-8")
    code, output = run_cli(["ingest", str(page), str(note)], monkeypatch, capsys)
    check_run(code, output)
    assert code == 0 and "added 1" in output
    assert f"{page}: the HTML could not be parsed (ImportError)" in output


def test_the_real_executable_on_hostile_files(tmp_path: Path) -> None:
    files = tmp_path / "hostile"
    files.mkdir()
    (files / "probe1.html").write_bytes(ISSUE_16_TEXT.encode("utf-8", "surrogatepass"))
    (files / "lone.md").write_bytes(("# \ud800 title\n\n" + "\udfff" * 20).encode(
        "utf-8", "surrogatepass"))
    (files / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 50)
    (files / "nested.html").write_text("<div>" * 5000 + "x" + "</div>" * 5000)
    groundqa = Path(sys.executable).with_name("groundqa")
    env = {"GROUNDQA_DATA_DIR": str(tmp_path / "data"), "GROUNDQA_EMBEDDER": "hash",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(groundqa), "ingest", str(files)], capture_output=True,
                            text=True, env=env, timeout=120)
    output = result.stdout + result.stderr
    check_run(result.returncode, output)
    assert result.returncode == 2
    assert output.count("skipped") == 4, output
