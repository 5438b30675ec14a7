from bailong.corpus.filters import ExactDedup, min_han, min_length, normalize


def test_normalize_is_nfc_not_nfkc():
    # NFC composes e + combining acute; NFKC would also turn the full-width comma into ','.
    assert normalize("cafe\u0301，好") == "caf\u00e9，好"


def test_normalize_removes_controls_and_crlf():
    assert normalize("a\r\nb\x07c  \n\n") == "a\nbc"


def test_filters_return_keep_or_reason():
    assert min_length("台灣", 3) == (False, "too_short")
    assert min_length("台灣好", 3) is True
    assert min_han("hello 世界", 0.5) == (False, "low_han_ratio")
    assert min_han("世界 ok", 0.5) is True


def test_exact_dedup():
    dedup = ExactDedup()
    assert dedup("同一段文字") is True
    assert dedup("同一段文字") == (False, "exact_duplicate")
    assert dedup("另一段文字") is True
