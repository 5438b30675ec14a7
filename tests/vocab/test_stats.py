from bailong.vocab import stats


def test_measure_counts_partial_characters(tiny_base, tiny_vocab):
    from bailong.models import load_tokenizer

    base = stats.measure(load_tokenizer(tiny_base), ["臺灣", "ok"])
    # The tiny base learned English only: each Han character is 3 byte tokens, all partial.
    assert base == {"tokens_per_char": 2.0, "partial_share": 0.75, "tokens": 8}


def test_compare_writes_table_and_plot(tiny_base, tiny_vocab, tmp_path):
    _, vocab_dir = tiny_vocab
    rows = stats.compare({"base": tiny_base, "extended": vocab_dir / "tokenizer"}, {"zh": ["臺灣的夜市很熱鬧。"]})
    assert [r["tokenizer"] for r in rows] == ["base", "extended"]
    assert rows[1]["zh tokens/char"] < rows[0]["zh tokens/char"]
    md, png = stats.write(rows, tmp_path)
    assert md.read_text().splitlines()[0] == "| tokenizer | vocab | zh tokens/char | zh partial-char share |"
    assert png.stat().st_size > 0
