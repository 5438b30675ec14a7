"""Cleaning and quality filters. A filter returns True to keep or (False, reason) to drop, nothing else.

Repetition follows Gopher (Rae et al. 2021, appendix A) with its word units adapted to Chinese:
a Han character is a unit, a run of Latin letters or digits is a unit, any other non-space
character is a unit. Units are hashed and the n-gram statistics computed with numpy, so a long
statute costs milliseconds, not seconds.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from bailong.zh import han_count

Verdict = bool | tuple[bool, str]

# C0/C1 control characters other than tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UNITS = re.compile(r"[A-Za-z0-9]+|\S")
_SPACE = re.compile(r"\s")
# Short lines that are site furniture rather than prose (zh-TW and English web pages).
_BOILERPLATE = re.compile(
    r"版權所有|著作權所有|all rights reserved|copyright|©|隱私權政策|隱私政策|使用條款|服務條款|cookie|"
    r"登入|登出|註冊|忘記密碼|分享到|分享至|上一篇|下一篇|回到頂端|回頂端|返回頂部|加入書籤|點擊這裡|點此|"
    r"訂閱電子報|瀏覽次數|閱讀次數|相關文章|熱門文章|privacy policy|terms of (use|service)|sign in|log in|subscribe",
    re.IGNORECASE,
)
BOILERPLATE_MAX_CHARS = 40
MIN_UNITS = 50  # Gopher's repetition rules apply to documents of 50+ words; shorter ones are not judged  # a longer line mentioning copyright is prose, not furniture


def normalize(text: str) -> str:
    """NFC (not NFKC: full-width CJK punctuation stays), no control characters, unix newlines, no
    trailing spaces.

    >>> normalize("台\\u0301灣\\r\\n\\x07ok  ")
    '台́灣\\nok'
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def strip_boilerplate(text: str) -> tuple[str, int]:
    """(text without boilerplate lines, lines removed).

    >>> strip_boilerplate("臺北市的公園很多。\\n版權所有 © 2024\\n下一篇")
    ('臺北市的公園很多。', 2)
    """
    kept, removed = [], 0
    for line in text.split("\n"):
        if len(line) <= BOILERPLATE_MAX_CHARS and _BOILERPLATE.search(line):
            removed += 1
        else:
            kept.append(line)
    return ("\n".join(kept).strip(), removed) if removed else (text, 0)


def length(text: str, min_chars: int, max_chars: int) -> Verdict:
    if len(text) < min_chars:
        return False, "too_short"
    return True if len(text) <= max_chars else (False, "too_long")


def han_ratio(text: str, min_ratio: float) -> Verdict:
    if min_ratio <= 0:
        return True
    visible = len(text) - len(_SPACE.findall(text))
    return True if visible and han_count(text) / visible >= min_ratio else (False, "low_han_ratio")


def duplicate_lines(text: str, max_fraction: float, max_char_fraction: float) -> Verdict:
    """Gopher: share of lines (and of their characters) that repeat an earlier line."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return True
    seen: set[str] = set()
    dup = dup_chars = 0
    for line in lines:
        if line in seen:
            dup += 1
            dup_chars += len(line)
        seen.add(line)
    if dup / len(lines) > max_fraction:
        return False, "repeated_lines"
    return True if dup_chars / sum(map(len, lines)) <= max_char_fraction else (False, "repeated_line_chars")


_POWERS = np.cumprod(np.full(64, 1_000_003, dtype=np.uint64), dtype=np.uint64) // np.uint64(1_000_003)  # 1, P, P^2, ...


def _unit_hashes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(hash, character length) of each unit, vectorized: a run of ASCII letters/digits is one unit,
    any other non-space character is a unit of its own. Deterministic (no salted str hash)."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    space = (cp == 32) | (cp == 10) | (cp == 9) | (cp == 0x3000) | (cp == 0xA0)
    alnum = ((cp >= 48) & (cp <= 57)) | ((cp >= 65) & (cp <= 90)) | ((cp >= 97) & (cp <= 122))
    continues = alnum & np.concatenate([[False], alnum[:-1]])  # inside a Latin word, not its first letter
    keep = np.flatnonzero(~space)
    if not len(keep):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(~continues[keep])  # unit starts, as indices into `keep`
    offset = np.arange(len(keep)) - np.repeat(starts, np.diff(np.append(starts, len(keep))))
    with np.errstate(over="ignore"):
        terms = cp[keep].astype(np.uint64) * _POWERS[np.minimum(offset, 63)]
        hashes = np.add.reduceat(terms, starts)
    return hashes, np.diff(np.append(starts, len(keep)))


def _ngram_hashes(h: np.ndarray, n: int) -> np.ndarray:
    out = h[: len(h) - n + 1].copy()
    for k in range(1, n):
        out = out * np.uint64(1_000_003) + h[k : len(h) - n + 1 + k]  # wraps mod 2^64: a rolling hash
    return out


def ngram_repetition(text: str, max_top: dict[int, float], max_dup: dict[int, float]) -> Verdict:
    """Gopher: the most frequent n-gram's share of characters (n = 2-4), and the share of characters
    inside n-grams that occur more than once (n = 5-10), over the units described above.

    >>> ngram_repetition("買一送一！" * 40, {2: 0.2}, {})
    (False, 'top_2gram')
    >>> ngram_repetition("臺灣位於東亞，是一個島嶼。首都是臺北市。" * 3, {2: 0.2}, {10: 0.15})
    (False, 'repeated_10grams')
    >>> ngram_repetition("臺灣位於東亞，是一個島嶼。", {2: 0.2}, {10: 0.15})  # under 50 units: not judged
    True
    """
    h, lengths = _unit_hashes(text)
    if len(h) < MIN_UNITS:
        return True
    total = lengths.sum()
    chars = np.concatenate([[0], np.cumsum(lengths)])
    for n, limit in sorted(max_top.items()):
        if len(h) > n:
            order, run, counts = _runs(_ngram_hashes(h, n))
            # Characters covered by each repeated n-gram's occurrences (count x its length, the same at every
            # occurrence); the largest decides, which is deterministic on ties.
            covered = counts[run] * (chars[order + n] - chars[order])
            if (covered * (counts[run] > 1)).max() / total > limit:
                return False, f"top_{n}gram"
    dup = sorted(max_dup.items())
    for i, (n, limit) in enumerate(dup):
        if len(h) <= n:
            break
        order, run, counts = _runs(_ngram_hashes(h, n))
        starts = order[counts[run] > 1]
        share = 0.0
        if len(starts):
            cover = np.zeros(len(h) + 1, dtype=np.int64)
            np.add.at(cover, starts, 1)
            np.add.at(cover, starts + n, -1)
            share = lengths[np.cumsum(cover[:-1]) > 0].sum() / total
            if share > limit:
                return False, f"repeated_{n}grams"
        # Every unit inside a repeated (n+1)-gram is inside a repeated n-gram, so the share only falls as n
        # grows: once it is under every larger n's limit, those n cannot fail (saves their sorts).
        if all(share <= later for _, later in dup[i + 1 :]):
            break
    return True


def _runs(grams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One argsort: (order, run id of each sorted position, occurrences per run)."""
    order = np.argsort(grams)
    s = grams[order]
    run = np.concatenate([[0], np.cumsum(s[1:] != s[:-1])])
    return order, run, np.bincount(run)
