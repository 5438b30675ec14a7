from bailong.vocab.bytelevel import bpe, bytes_to_unicode, extend, qualifies, symbols_to_bytes, text_to_symbols


def test_byte_alphabet_is_a_bijection():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ"


def test_symbols_round_trip():
    assert symbols_to_bytes(text_to_symbols("台灣 ok")).decode() == "台灣 ok"


def test_bpe_applies_lowest_rank_first():
    ranks = {("a", "b"): 1, ("b", "c"): 0, ("a", "bc"): 2}
    assert bpe("abc", ranks) == ["abc"]
    assert bpe("abc", {("a", "b"): 0, ("b", "c"): 1}) == ["ab", "c"]
    assert bpe("x", ranks) == ["x"]


def test_qualifies_only_non_ascii():
    assert qualifies(text_to_symbols("台"))
    assert not qualifies(text_to_symbols(" the"))


def test_extend_joins_current_pieces_and_keeps_old_entries():
    h = text_to_symbols("\u00e9")  # two non-ASCII bytes: Ã ©
    x, y = h[0], h[1]
    model = {"vocab": {x: 0, y: 1, "z": 2}, "merges": []}
    added = extend(model, [(x + y, "learned")], n_new=5, first_id=3)
    assert [(t.id, t.token, t.old_pieces, t.origin) for t in added] == [(3, h, [x, y], "learned")]
    assert model["vocab"] == {x: 0, y: 1, "z": 2, h: 3}
    assert model["merges"] == [[x, y]]


def test_extend_adds_intermediates_when_base_pieces_differ():
    a, b, c = text_to_symbols("\u4e00")  # 3 bytes of 一
    model = {"vocab": {a: 0, b: 1, c: 2, b + c: 3}, "merges": [[b, c]]}
    # Learned order wanted a+b first, but the base merge b+c fires first: join [a, bc] instead.
    added = extend(model, [(a + b, "learned"), (a + b + c, "learned")], n_new=10, first_id=4)
    assert [(t.token, t.origin) for t in added] == [(a + b, "learned"), (a + b + c, "learned")]
    assert model["merges"][1:] == [[a, b], [a, b + c]]
    assert bpe(a + b + c, {tuple(m): i for i, m in enumerate(model["merges"])}) == [a + b + c]


def test_extend_stops_at_budget():
    model = {"vocab": {c: i for i, c in enumerate(text_to_symbols("一二"))}, "merges": []}
    s = text_to_symbols("一二")
    added = extend(model, [(s[0] + s[1], "learned"), (s[3] + s[4], "learned")], n_new=1, first_id=10)
    assert len(added) == 1


def test_extend_adds_intermediate_joins_for_a_whole_character():
    a, b, c = text_to_symbols("\u4e00")
    model = {"vocab": {a: 0, b: 1, c: 2}, "merges": []}
    added = extend(model, [(a + b + c, "coverage")], n_new=5, first_id=3)
    assert [(t.token, t.origin) for t in added] == [(a + b, "intermediate"), (a + b + c, "coverage")]
