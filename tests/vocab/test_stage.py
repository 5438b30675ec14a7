import json

import pytest

from bailong.config import BailongError
from bailong.models import load_tokenizer
from bailong.vocab import VocabConfig, run

ROUND_TRIP = [
    "",
    "臺灣的夜市小吃：蚵仔煎、臭豆腐。",
    "「你好」，《書名》……！？",
    "emoji 😀🇹🇼 mixed 中英 text 123",
    "𠀀𠀁𪚥 (CJK Extension B)",
    "  leading, many    spaces\t\ttabs\n\nnewlines  ",
    "這个是混合简体的句子",
    "def f(x):\n    return x  # 程式碼",
]


@pytest.fixture(scope="module")
def extended(tiny_vocab, tiny_base):
    result, out = tiny_vocab
    return result, tiny_base, out


def test_old_ids_and_strings_unchanged(extended):
    result, base, out = extended
    old, new = load_tokenizer(base).get_vocab(), load_tokenizer(out / "tokenizer").get_vocab()
    assert all(new[t] == i for t, i in old.items())
    assert len(new) == len(old) + 300 == result.stats["vocab_size"]
    assert len(set(new.values())) == len(new)


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_lossless(extended, text):
    tok = load_tokenizer(extended[2] / "tokenizer")
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_english_segmentation_unchanged(extended):
    _, base, out = extended
    old, new = load_tokenizer(base), load_tokenizer(out / "tokenizer")
    text = "Continued pretraining adapts a model to a new language, and English must not suffer."
    assert new(text)["input_ids"] == old(text)["input_ids"]
    assert extended[0].stats["tokens_per_char_en_after"] == extended[0].stats["tokens_per_char_en_before"]


def test_compression_improves_and_tsv_is_readable(extended):
    result, _, out = extended
    assert result.stats["tokens_per_char_zh_after"] < 0.7 * result.stats["tokens_per_char_zh_before"]
    rows = (out / "new_tokens.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "id\ttoken\ttext\tfrequency\torigin\told_ids\told_pieces"
    assert len(rows) == 301
    first = rows[1].split("\t")
    assert int(first[0]) == result.stats["base_vocab_size"]
    assert first[4] in ("learned", "intermediate")
    assert len(first[5].split()) >= 2  # the old tokenizer needed several pieces


def test_new_tokens_are_produced_by_bpe_itself(extended):
    """Not HF 'added tokens': the BPE model's own merges produce them."""
    _, _, out = extended
    spec = json.loads((out / "tokenizer" / "tokenizer.json").read_text())
    tok = load_tokenizer(out / "tokenizer")
    assert "臺灣" in tok.decode(tok("臺灣")["input_ids"])
    assert all(t["id"] < 3 for t in spec["added_tokens"])
    assert len(tok("我們今天去夜市")["input_ids"]) < len("我們今天去夜市".encode())


def test_too_many_tokens_warns_and_reports_actual(tiny_base, tmp_path, caplog):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "臺灣臺灣臺灣 夜市夜市"}, ensure_ascii=False) + "\n", encoding="utf-8")
    result = run(VocabConfig(base_model=str(tiny_base), corpus=corpus, out_dir=tmp_path / "o", new_tokens=5000, coverage=[]))
    assert 0 < result.stats["new_tokens_added"] < 5000
    assert "the corpus supports" in caplog.text


def test_non_chinese_corpus_is_refused(tiny_base, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "only English here"}) + "\n")
    with pytest.raises(BailongError, match="no Han characters"):
        run(VocabConfig(base_model=str(tiny_base), corpus=corpus, out_dir=tmp_path / "o"))


def test_unsupported_tokenizer_kind(tmp_path, zh_corpus):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]").save_pretrained(tmp_path / "wp")
    with pytest.raises(BailongError, match="tokenizer kind WordPiece .* is not supported; supported: byte-level BPE"):
        run(VocabConfig(base_model=str(tmp_path / "wp"), corpus=zh_corpus, out_dir=tmp_path / "o"))


def test_coverage_characters_come_first_as_single_tokens(tiny_base, zh_corpus, tmp_path):
    chars = tmp_path / "chars.txt"
    chars.write_text("龘 鱻\n", encoding="utf-8")
    result = run(VocabConfig(base_model=str(tiny_base), corpus=zh_corpus, out_dir=tmp_path / "o", new_tokens=50,
                             coverage=[], coverage_file=chars))
    tok = load_tokenizer(tmp_path / "o" / "tokenizer")
    assert len(tok("龘", add_special_tokens=False)["input_ids"]) == 1
    assert len(tok("鱻", add_special_tokens=False)["input_ids"]) == 1
    rows = [r.split("\t") for r in (tmp_path / "o" / "new_tokens.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    assert [r[2] for r in rows if r[4] == "coverage"] == ["龘", "鱻"]
    assert [r[4] for r in rows[:2]] != ["learned", "learned"]  # coverage (and its byte joins) precede learned tokens
    assert result.stats["coverage_tokens"] == 2


def test_learned_file_is_readable_and_reusable(tiny_vocab, tiny_base, zh_corpus, tmp_path):
    from bailong.vocab.stage import read_learned

    _, out = tiny_vocab
    lines = (out / "learned.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# bailong learned tokens v1 kind=bytelevel"
    again = run(VocabConfig(base_model=str(tiny_base), corpus=zh_corpus, out_dir=tmp_path / "o", new_tokens=300,
                            coverage=[], learned=out / "learned.txt"))
    assert (tmp_path / "o" / "tokenizer" / "tokenizer.json").read_text() == (out / "tokenizer" / "tokenizer.json").read_text()
    assert again.stats["new_tokens_added"] == 300
    with pytest.raises(BailongError, match="is not a learned.txt for a sentencepiece tokenizer"):
        read_learned(out / "learned.txt", "sentencepiece")
