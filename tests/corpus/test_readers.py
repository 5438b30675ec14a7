import bz2
import gzip
import io
import json

import pytest

from bailong.corpus.config import Source
from bailong.corpus.readers import MAX_LINE_BYTES, Doc, Problem, detect_format, read_source, resolve_files


def _items(path, **source):
    src = Source(path=str(path), **source)
    return list(read_source(src, resolve_files(src)))


def _docs(items):
    return [i.text for i in items if isinstance(i, Doc)]


def _problems(items):
    return [(i.where.rsplit(":", 1)[1], i.reason) for i in items if isinstance(i, Problem)]


def test_jsonl_bad_lines_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"text": "第一篇"}, ensure_ascii=False).encode(),
        b'{"text": "broken',
        json.dumps({"body": "沒有欄位"}, ensure_ascii=False).encode(),
        b'{"text": "\xff\xfe"}',
        b"",
        b'{"text": "' + b"x" * (10 << 20) + b'"}',  # a 10 MB line
        json.dumps({"text": "最後一篇"}, ensure_ascii=False).encode(),
    ]) + b"\n")
    items = _items(path)
    assert _docs(items) == ["第一篇", "最後一篇"]
    assert _problems(items) == [("2", "malformed JSON (Unterminated string starting at)"), ("3", "no string field 'text'"),
                                ("4", "invalid UTF-8 at byte 10"), ("6", f"line over {MAX_LINE_BYTES >> 20} MiB")]


def test_empty_file_is_reported(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty.txt").write_bytes(b"\n\n")
    assert _problems(_items(tmp_path / "empty.jsonl")) == [("0", "empty file")]
    assert _problems(_items(tmp_path / "empty.txt")) == [("0", "empty file")]


def test_compressed_jsonl_and_field_paths(tmp_path):
    import zstandard

    row = {"name": "某法", "articles": [{"text": "第一條"}, {"chapter": "第一章"}, {"text": "第二條"}]}
    line = json.dumps(row, ensure_ascii=False).encode() + b"\n"
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(line))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(line))
    for name in ("a.jsonl.gz", "b.jsonl.zst"):
        assert _docs(_items(tmp_path / name, text_field=["name", "articles.text"])) == ["某法\n第一條\n第二條"]


def test_oscar_reads_content(tmp_path):
    path = tmp_path / "zh_meta.jsonl"
    path.write_text(json.dumps({"content": "臺北的天氣", "metadata": {"identification": {"label": "zh"}}}, ensure_ascii=False))
    assert _docs(_items(path, format="oscar")) == ["臺北的天氣"]


@pytest.mark.parametrize("split,expected", [("blank_line", ["一\n二", "三"]), ("line", ["一", "二", "三"]), ("file", ["一\n二\n\n三"])])
def test_text_splits(tmp_path, split, expected):
    path = tmp_path / "in.txt"
    path.write_bytes("一\n二\n\n三\n".encode() + b"\xff\n")
    items = _items(path, split=split)
    assert _docs(items) == expected
    assert _problems(items) == [("5", "invalid UTF-8 at byte 0")]


def test_parquet_and_hf_disk(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["甲", None, "乙"]}), tmp_path / "a.parquet")
    items = _items(tmp_path / "a.parquet")
    assert _docs(items) == ["甲", "乙"] and _problems(items) == [("2", "'text' is not a string")]
    assert _problems(_items(tmp_path / "a.parquet", text_field="body")) == [("0", "no column 'body' (columns: text)")]
    datasets.Dataset.from_dict({"content": ["一", "二", "三"]}).save_to_disk(str(tmp_path / "ds"))
    src = Source(path=str(tmp_path / "ds"), format="hf-disk", text_field="content")
    files = resolve_files(src)
    shards = [_docs(read_source(src, files, rank, 2)) for rank in range(2)]
    assert shards == [["一", "二"], ["三"]]


WIKI = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
<page><title>臺灣</title><ns>0</ns><id>1</id><revision><text>'''臺灣'''位於[[東亞]]{{Infobox|x=1}}&lt;ref&gt;注&lt;/ref&gt;。
[[Category:島嶼]]</text></revision></page>
<page><title>台湾</title><ns>0</ns><id>2</id><redirect title="臺灣" /><revision><text>#REDIRECT [[臺灣]]</text></revision></page>
<page><title>Template:X</title><ns>10</ns><id>3</id><revision><text>{{x}}</text></revision></page>
</mediawiki>"""


def test_wikipedia_dump(tmp_path):
    path = tmp_path / "zhwiki-pages-articles.xml.bz2"
    path.write_bytes(bz2.compress(WIKI.encode()))
    assert detect_format(path) == "wikipedia"
    items = _items(path)
    assert _docs(items) == ["臺灣位於東亞。"]
    assert _problems(items) == [("page 2", "skipped: redirect"), ("page 3", "skipped: not an article (namespace)")]


def test_common_crawl_wet(tmp_path):
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "x.warc.wet.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, text in (("https://a.tw/", "臺灣新聞"), ("https://b.tw/", "第二頁")):
            record = writer.create_warc_record(url, "conversion", payload=io.BytesIO(text.encode()),
                                               warc_content_type="text/plain")
            writer.write_record(record)
    assert detect_format(path) == "wet"
    docs = [i for i in _items(path) if isinstance(i, Doc)]
    assert [(d.id, d.text) for d in docs] == [("https://a.tw/", "臺灣新聞"), ("https://b.tw/", "第二頁")]
