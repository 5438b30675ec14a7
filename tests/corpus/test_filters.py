from bailong.corpus.filters import duplicate_lines, han_ratio, length, ngram_repetition, normalize, strip_boilerplate


def test_normalize_is_nfc_not_nfkc():
    # NFC composes e + combining acute; NFKC would also turn the full-width comma into ','.
    assert normalize("cafe\u0301，好") == "caf\u00e9，好"


def test_normalize_removes_controls_and_crlf():
    assert normalize("a\r\nb\x07c  \n\n") == "a\nbc"


def test_filters_return_keep_or_reason():
    assert length("台灣", 3, 10) == (False, "too_short")
    assert length("台灣好", 3, 10) is True
    assert length("台灣好" * 4, 3, 10) == (False, "too_long")
    assert han_ratio("hello 世界", 0.5) == (False, "low_han_ratio")
    assert han_ratio("世界 ok", 0.5) is True
    assert han_ratio("", 0.5) == (False, "low_han_ratio")


def test_boilerplate_lines_go_prose_stays():
    text = "登入｜註冊\n今天的新聞提到版權所有人的權利在著作權法中有詳細的規定，值得大家在簽約之前仔細閱讀與了解。\nAll rights reserved."
    assert strip_boilerplate(text) == ("今天的新聞提到版權所有人的權利在著作權法中有詳細的規定，值得大家在簽約之前仔細閱讀與了解。", 2)


def test_repeated_lines():
    assert duplicate_lines("甲\n乙\n甲\n甲", 0.3, 0.9) == (False, "repeated_lines")
    assert duplicate_lines("甲\n乙\n丙\n甲乙丙丁戊己庚辛壬癸", 0.3, 0.9) is True
    assert duplicate_lines("短\n很長很長很長很長的一行\n很長很長很長很長的一行\n丁\n戊\n己\n庚", 0.3, 0.2) == (False, "repeated_line_chars")


def test_ngram_repetition_over_han_characters_and_words():
    prose = ("臺灣位於東亞，北回歸線穿過中部。島上山脈縱走，玉山是最高峰，東部海岸陡峭，西部則是平原。"
             "夏季常有颱風，冬季東北季風帶來雨水。人口多集中在西部的城市，鐵路與高速公路連接南北。")
    assert len(prose) > 80
    assert ngram_repetition(prose, {2: 0.2, 3: 0.18, 4: 0.16}, {10: 0.15, 15: 0.13, 20: 0.1}) is True
    assert ngram_repetition("限時特價，" * 30 + prose, {}, {10: 0.15}) == (False, "repeated_10grams")
    english = ("The night market opens after sunset. Vendors sell grilled squid, oyster omelettes and bubble tea, while "
               "students queue for fried chicken and families look for a table. By midnight the street is quiet again, "
               "and the only sound is a scooter heading home along the river.")
    assert ngram_repetition(english, {2: 0.2, 3: 0.18, 4: 0.16}, {10: 0.15, 15: 0.13, 20: 0.1}) is True


def test_ngram_repetition_checks_longer_ngrams_when_shorter_ones_are_near_their_limit():
    unique = "".join(chr(0x4E00 + i) for i in range(300))  # no character twice: no repeated n-gram
    twice = "".join(chr(0x6000 + i) for i in range(25))
    text = unique[:150] + twice + unique[150:] + twice  # 50 of 350 characters (14%) in repeated 25-grams
    assert ngram_repetition(text, {}, {10: 0.15}) is True
    assert ngram_repetition(text, {}, {10: 0.15, 20: 0.10}) == (False, "repeated_20grams")
    assert ngram_repetition(text, {}, {10: 0.15, 30: 0.10}) is True  # no 30-gram repeats
