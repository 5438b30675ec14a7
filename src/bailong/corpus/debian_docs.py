"""The embedded default corpus: genuine Taiwan-usage text from Debian's zh-TW documentation packages.

A fresh Debian/Ubuntu machine can fetch these from its package registry, so the demo needs no
third-party text in this repository. The packages are downloaded (not installed) with
``apt-get download``, unpacked into the bailong cache, and their HTML pages stripped to text,
one document per page, one line per block element.
"""

from __future__ import annotations

import html.parser
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bailong.config import BailongError
from bailong.io import CACHE_DIR, atomic_path, write_jsonl

log = logging.getLogger(__name__)

PACKAGES = ("libreoffice-help-zh-tw", "debian-reference-zh-tw", "maint-guide-zh-tw")
BUILTIN_NAME = "debian-zh-tw-docs"
_BLOCK_TAGS = {"p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dt", "dd", "div", "br", "tr", "title"}
_SKIP_TAGS = {"script", "style"}


class _TextExtractor(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.lines.append("")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.lines.append("")

    def handle_data(self, data):
        if not self._skip:
            self.lines[-1] += data


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, one line per block element, whitespace collapsed.

    >>> html_to_text("<p>你好<b>世界</b></p><script>x</script><li>二</li>")
    '你好世界\\n二'
    """
    parser = _TextExtractor()
    parser.feed(markup)
    lines = (re.sub(r"\s+", " ", line).strip() for line in parser.lines)
    return "\n".join(line for line in lines if line)


def _download(workdir: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise BailongError(
            "the demo corpus comes from Debian's zh-TW documentation packages, but apt-get/dpkg-deb "
            "are not available here; run `bailong demo --corpus PATH` with your own zh-TW text "
            "(.txt or .jsonl with a 'text' field)"
        )
    cmd = ["apt-get", "download", *PACKAGES]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0 and os.geteuid() == 0:
        # A fresh machine may have no package lists yet; as root we may fetch them once.
        log.info("apt-get download failed; running apt-get update once")
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise BailongError(
            f"could not download {', '.join(PACKAGES)} with apt-get ({first}); "
            "run `bailong demo --corpus PATH` with your own zh-TW text"
        )


def ensure_debian_zh_tw() -> Path:
    """Path of the cached JSONL corpus ({id, text, source}), building it on first use."""
    target = CACHE_DIR / "corpora" / BUILTIN_NAME / "docs.jsonl"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log.info("downloading %s with apt-get (once; cached in %s)", ", ".join(PACKAGES), target.parent)
        _download(work)
        root = work / "root"
        for deb in sorted(work.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        pages = sorted(root.rglob("*.html"))
        rows = []
        for page in pages:
            text = html_to_text(page.read_text(encoding="utf-8", errors="replace"))
            if text:
                rows.append({"id": str(page.relative_to(root)), "text": text, "source": BUILTIN_NAME})
        if not rows:
            raise BailongError("the Debian zh-TW documentation packages held no HTML text")
        with atomic_path(target.parent) as folder:
            folder.mkdir(parents=True)
            write_jsonl(folder / "docs.jsonl", rows)
    return target
