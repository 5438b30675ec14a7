import json

import pytest

from bailong.config import BailongError
from bailong.corpus import CorpusConfig, run


def _write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_every_document_is_accounted_for(tmp_path):
    src = _write(tmp_path / "in.jsonl", [
        json.dumps({"text": "臺灣的夜市很熱鬧，小吃種類很多。"}, ensure_ascii=False).encode(),
        json.dumps({"text": "臺灣的夜市很熱鬧，小吃種類很多。"}, ensure_ascii=False).encode(),  # duplicate
        json.dumps({"text": "短"}, ensure_ascii=False).encode(),  # too short
        b'{"text": "broken',  # malformed JSON
        json.dumps({"body": "沒有 text 欄位的資料列"}, ensure_ascii=False).encode(),  # missing field
        b'{"text": "\xff\xfe bad utf-8"}',  # invalid UTF-8
        json.dumps({"text": "这个软件的信息很重要，请大家注意。"}, ensure_ascii=False).encode(),  # Simplified
    ])
    result = run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "out", min_chars=5, heldout_fraction=0))
    s = result.stats
    assert s["documents_read"] == 4
    assert s["documents_kept"] == 2
    assert s["dropped"] == {"exact_duplicate": 1, "too_short": 1}
    assert s["unreadable"] == 3
    assert s["converted_to_traditional"] == 1
    assert [e.split(": ", 1)[1] for e in s["unreadable_examples"]] == [
        "malformed JSON (Unterminated string starting at)", "no string field 'text'", "invalid UTF-8"]
    assert s["unreadable_examples"][0].startswith(f"{src}:4")
    texts = [json.loads(line)["text"] for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert texts == ["臺灣的夜市很熱鬧，小吃種類很多。", "這個軟體的資訊很重要，請大家注意。"]


def test_convert_none_keeps_simplified(tmp_path):
    src = _write(tmp_path / "in.txt", ["这个软件很好用，大家都喜欢。".encode()])
    result = run(CorpusConfig(sources=[{"path": str(src), "convert": "none"}], out_dir=tmp_path / "out", heldout_fraction=0, min_chars=1))
    assert result.stats["converted_to_traditional"] == 0
    assert json.loads((tmp_path / "out" / "train.jsonl").read_text())["text"] == "这个软件很好用，大家都喜欢。"


def test_text_split_by_blank_lines(tmp_path):
    src = _write(tmp_path / "in.txt", ["第一段第一行".encode(), "第一段第二行".encode(), b"", "第二段".encode()])
    result = run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "out", heldout_fraction=0, min_chars=1))
    assert result.stats["train_docs"] == 2


def test_heldout_is_deterministic_and_bounded(tmp_path, zh_texts):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in zh_texts), encoding="utf-8")
    cfg = dict(sources=[{"path": str(src)}], heldout_fraction=0.2, heldout_chars=2000)
    a = run(CorpusConfig(out_dir=tmp_path / "a", **cfg)).stats
    b = run(CorpusConfig(out_dir=tmp_path / "b", **cfg)).stats
    assert (tmp_path / "a" / "heldout.jsonl").read_text() == (tmp_path / "b" / "heldout.jsonl").read_text()
    assert 0 < a["heldout_docs"] == b["heldout_docs"]
    assert a["heldout_chars"] < 2000 + max(map(len, zh_texts))


def test_empty_corpus_is_a_clear_error(tmp_path):
    src = tmp_path / "empty.txt"
    src.write_text("")
    with pytest.raises(BailongError, match="corpus is empty: no document kept"):
        run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "out"))


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(BailongError, match="matches no file"):
        run(CorpusConfig(sources=[{"path": str(tmp_path / "nope.txt")}], out_dir=tmp_path / "out"))
