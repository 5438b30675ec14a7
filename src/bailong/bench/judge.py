"""LLM-as-a-judge with Bailong-bench's Traditional Chinese rules, over any OpenAI-compatible endpoint."""

from __future__ import annotations

import hashlib
import os
import re

from bailong.bench.config import JudgeSettings
from bailong.config import BailongError

TEMPLATE_VERSION = "1"
SYSTEM = (
    "請扮演一位公正的評審，評估下方 AI 助理對使用者問題的回答品質。請考量回答的有用性、相關性、正確性、深度、"
    "創意與細節程度。規則：若回答使用的語言與使用者不同（英文對中文或中文對英文），除非使用者要求或該任務是翻譯，"
    "一律給 0 分；回答中只要出現任何簡體中文，一律給 0 分。請先簡短說明理由，盡量客觀，"
    "最後嚴格依照此格式輸出 0 到 10 的整數分數：「評分：[[5]]」。"
)
_RATING = re.compile(r"\[\[(\d{1,2})\]\]")


def render(turns: list[str], answers: list[str], reference: list[str] | None) -> str:
    """The judge's user message: the whole conversation, with the reference answer when there is one."""
    parts = []
    for i, (q, a) in enumerate(zip(turns, answers), 1):
        parts.append(f"[使用者第 {i} 輪]\n{q}\n\n[助理第 {i} 輪回答開始]\n{a}\n[助理第 {i} 輪回答結束]")
    if reference:
        parts.append("[參考答案]\n" + "\n".join(reference))
    if len(turns) > 1:
        parts.append("請評估助理在整段多輪對話中的表現，特別是最後一輪。")
    return "\n\n".join(parts)


def template_hash() -> str:
    return hashlib.sha256((TEMPLATE_VERSION + SYSTEM).encode()).hexdigest()[:12]


def parse_rating(reply: str) -> int | None:
    """The judge's own LAST [[n]] in 0..10; None when there is none.

    >>> parse_rating("回答引用了 [[10]]，但品質普通。評分：[[4]]")
    4
    """
    found = [int(m) for m in _RATING.findall(reply) if 0 <= int(m) <= 10]
    return found[-1] if found else None


def make_client(cfg: JudgeSettings):
    from openai import OpenAI

    key = os.environ.get(cfg.api_key_env)
    if key is None and not cfg.base_url.startswith(("http://127.0.0.1", "http://localhost")):
        raise BailongError(f"judge: environment variable {cfg.api_key_env} is not set")
    return OpenAI(base_url=cfg.base_url, api_key=key or "none", timeout=cfg.timeout, max_retries=cfg.max_retries)


def judge(client, cfg: JudgeSettings, turns: list[str], answers: list[str], reference: list[str] | None) -> tuple[int | None, str]:
    """(rating or None, judge's reply). The openai client retries 429/5xx/timeouts with backoff."""
    reply = client.chat.completions.create(
        model=cfg.model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": render(turns, answers, reference)}],
        temperature=0,
    )
    text = reply.choices[0].message.content or ""
    return parse_rating(text), text
