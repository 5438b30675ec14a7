"""EN <-> zh-TW translation scored with sacrebleu: BLEU (Chinese tokenization for zh-TW targets, 13a for
English) and chrF, on line-aligned files (e.g. ../shared/data/parallel/tw_laws_sample3000.{en,zh_TW}.txt).

Each direction asks the model, in the target's register, for the translation alone; the first
line of the reply is scored (models often add a note after the translation). A Simplified
character in a zh-TW translation is counted, as the bench's gate would count it.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from bailong.config import BailongError
from bailong.zh import simplified_chars

PROMPTS = {
    "en-zh": "請把下面的英文翻譯成臺灣慣用的繁體中文，只輸出譯文：\n{text}",
    "zh-en": "Translate the following Traditional Chinese text into English. Output only the translation:\n{text}",
}


def read_pairs(en_path: Path, zh_path: Path, limit: int | None) -> list[tuple[str, str]]:
    en = Path(en_path).read_text(encoding="utf-8").splitlines() if Path(en_path).is_file() else None
    zh = Path(zh_path).read_text(encoding="utf-8").splitlines() if Path(zh_path).is_file() else None
    if en is None or zh is None:
        raise BailongError(f"translation files {en_path} and {zh_path} must both exist")
    if len(en) != len(zh):
        raise BailongError(f"translation files are not line-aligned: {en_path} has {len(en)} lines, {zh_path} {len(zh)}")
    pairs = [(e.strip(), z.strip()) for e, z in zip(en, zh) if e.strip() and z.strip()]
    return pairs[:limit] if limit else pairs


def first_line(reply: str) -> str:
    return next((line.strip() for line in reply.splitlines() if line.strip()), "")


def evaluate(model, tok, pairs: list[tuple[str, str]], batch_size: int, max_new_tokens: int = 192) -> dict:
    """BLEU and chrF per direction, with the outputs' Simplified-character count."""
    import sacrebleu

    from bailong.bench.generation import generate_batch

    if not tok.chat_template:
        raise BailongError("bench: translation asks in chat form; the model has no chat template")
    gen = {"max_new_tokens": max_new_tokens, "do_sample": False}
    result = {"pairs": len(pairs)}
    for direction, prompt in PROMPTS.items():
        sources = [en if direction == "en-zh" else zh for en, zh in pairs]
        refs = [zh if direction == "en-zh" else en for en, zh in pairs]
        outputs: list[str] = []
        for start in tqdm(range(0, len(sources), batch_size), desc=f"translation {direction}", unit=" batches"):
            chunk = sources[start : start + batch_size]
            replies = generate_batch(model, tok, [[{"role": "user", "content": prompt.format(text=t)}] for t in chunk], gen)
            outputs += [first_line(r) for r in replies]
        bleu = sacrebleu.corpus_bleu(outputs, [refs], tokenize="zh" if direction == "en-zh" else "13a")
        chrf = sacrebleu.corpus_chrf(outputs, [refs])
        result[direction] = {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2),
                             "example": {"source": sources[0][:120], "output": outputs[0][:120], "reference": refs[0][:120]}}
        if direction == "en-zh":
            result[direction]["outputs_with_simplified"] = sum(bool(simplified_chars(o)) for o in outputs)
    return result
