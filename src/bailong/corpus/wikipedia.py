"""Wikipedia XML dumps (pages-articles*.xml[.bz2]) to plain-text articles, streamed.

Only main-namespace articles are documents; redirects and other namespaces are reported as
problems of kind "skipped" so the accounting still covers every page read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from bailong.corpus.readers import Doc, Problem
from bailong.io import open_binary

# Wikilinks to files and categories carry no prose; references and tables are mostly markup.
_DROP_LINK = re.compile(r"^(file|image|category|檔案|文件|图像|圖像|分類|分类):", re.IGNORECASE)
_DROP_TAGS = {"ref", "references", "gallery", "math", "table", "timeline", "score"}


def wikitext_to_text(wikitext: str) -> str:
    """Plain text of an article: templates, references, tables, files and categories removed.

    >>> wikitext_to_text("'''臺灣'''位於[[東亞]]{{cite|x}}<ref>注</ref>。\\n[[Category:島嶼]]")
    '臺灣位於東亞。'
    """
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    drop = list(code.filter_templates(recursive=False))
    drop += [t for t in code.filter_tags(recursive=False) if str(t.tag).strip().lower() in _DROP_TAGS]
    drop += [link for link in code.filter_wikilinks(recursive=False) if _DROP_LINK.match(str(link.title).strip())]
    for node in drop:
        code.remove(node)
    text = code.strip_code(normalize=True, collapse=True)
    lines = [line.strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line and not line.startswith(("{|", "|", "!"))).strip()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_wikipedia(path: Path) -> Iterator[Doc | Problem]:
    with open_binary(path) as f:
        try:
            for _, elem in ET.iterparse(f, events=("end",)):
                if _local(elem.tag) != "page":
                    continue
                fields = {_local(c.tag): c for c in elem}
                title = fields["title"].text if "title" in fields else ""
                ns = fields["ns"].text if "ns" in fields else "0"
                page_id = fields["id"].text if "id" in fields else title
                where = f"{path}:page {page_id}"
                revision = fields.get("revision")
                text_el = next((c for c in revision if _local(c.tag) == "text"), None) if revision is not None else None
                wikitext = text_el.text if text_el is not None and text_el.text else ""
                if ns != "0":
                    yield Problem(where, "skipped: not an article (namespace)")
                elif "redirect" in fields or wikitext.lstrip().lower().startswith(("#redirect", "#重定向")):
                    yield Problem(where, "skipped: redirect")
                else:
                    yield Doc(wikitext_to_text(wikitext), f"wiki:{page_id}", {"title": title})
                elem.clear()
        except ET.ParseError as exc:
            yield Problem(f"{path}:{exc.position[0]}", f"malformed XML ({exc})")
