"""SentencePiece (Llama 2) extension on the real Llama 2 tokenizer from ../shared/fixtures."""

import io
import shutil

import pytest

from bailong.config import BailongError
from bailong.models import load_tokenizer
from bailong.vocab import VocabConfig, run
from bailong.vocab.sentencepiece import processor, load_proto

ROUND_TRIP = [
    "", "臺灣的夜市小吃：蚵仔煎、臭豆腐。", "「你好」，《書名》……！？", "emoji 😀🇹🇼 mixed 中英 text 123",
    "𠀀𠀁𪚥 (CJK Extension B)", "  leading, many    spaces\t\ttabs\n\nnewlines  ", " x", "def f(x):\n    return x  # 程式碼",
]


@pytest.fixture(scope="module")
def llama2(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama2")
    shutil.copy(shared_data.parent / "fixtures" / "llama2-tokenizer" / "tokenizer.model", folder / "tokenizer.model")
    return folder


@pytest.fixture(scope="module")
def extended(llama2, zh_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sp")
    chars = out / "chars.txt"
    chars.write_text("龘鱻", encoding="utf-8")
    result = run(VocabConfig(base_model=str(llama2), corpus=zh_corpus, eval_corpus=zh_corpus, out_dir=out,
                             new_tokens=600, coverage=[], coverage_file=chars))
    return result, out


def test_old_pieces_keep_id_and_score_new_ones_rank_below(llama2, extended):
    result, out = extended
    base, new = load_proto(llama2 / "tokenizer.model"), load_proto(out / "tokenizer" / "tokenizer.model")
    assert len(new.pieces) == 32000 + 600 == result.stats["vocab_size"]
    assert [(p.piece, p.score) for p in new.pieces[:32000]] == [(p.piece, p.score) for p in base.pieces]
    new_scores = [p.score for p in new.pieces[32000:]]
    assert max(new_scores) < -31740 and len(set(new_scores)) == 600  # below every regular base piece, distinct
    assert [p.piece for p in new.pieces[32000:32002]] == ["龘", "鱻"]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_lossless(extended, text):
    tok = load_tokenizer(extended[1] / "tokenizer")
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_hf_and_sentencepiece_agree_on_held_out_lines(extended, shared_data):
    tok = load_tokenizer(extended[1] / "tokenizer")
    proc = processor(load_proto(extended[1] / "tokenizer" / "tokenizer.model"))
    lines = (shared_data / "eval" / "drcd_dev_paragraphs.txt").read_text(encoding="utf-8").splitlines()[:300]
    lines += (shared_data / "english" / "english_pd_combined_clean.txt").read_text(encoding="utf-8").splitlines()[:300]
    lines += ROUND_TRIP
    assert [line for line in lines if tok(line, add_special_tokens=False)["input_ids"] != proc.encode(line)] == []
    assert tok("你好")["input_ids"][0] == 1  # BOS, as Llama 2 expects


def test_english_token_counts_barely_change(llama2, extended, shared_data):
    old, new = load_tokenizer(llama2), load_tokenizer(extended[1] / "tokenizer")
    lines = (shared_data / "english" / "english_pd_combined_clean.txt").read_text(encoding="utf-8").splitlines()[:2000]
    count = lambda tok: sum(len(ids) for ids in tok(lines, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert abs(count(new) - count(old)) <= 0.005 * count(old)


def test_zh_compression_improves(extended):
    s = extended[0].stats
    assert s["tokens_per_char_zh_after"] < 0.75 * s["tokens_per_char_zh_before"]  # 600 tokens: 1.248 -> 0.914
    assert s["hf_matches_sentencepiece_zh"].split("/")[0] == s["hf_matches_sentencepiece_zh"].split("/")[1]


def test_unigram_sentencepiece_is_refused(zh_texts, zh_corpus, tmp_path):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(zh_texts), model_writer=model, vocab_size=2500, model_type="unigram", hard_vocab_limit=False,
                                   minloglevel=2)
    (tmp_path / "uni").mkdir()
    (tmp_path / "uni" / "tokenizer.model").write_bytes(model.getvalue())
    with pytest.raises(BailongError, match="tokenizer kind SentencePiece Unigram .* is not supported; supported: SentencePiece BPE"):
        run(VocabConfig(base_model=str(tmp_path / "uni"), corpus=zh_corpus, out_dir=tmp_path / "o"))
