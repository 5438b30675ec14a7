"""Local answering: batched, left-padded, multi-turn generation equals one conversation at a time."""

from __future__ import annotations

import shutil


def test_batched_answers_equal_unbatched(tiny_embedded, tmp_path):
    from bailong.bench.stage import answer
    from bailong.models import load_model, load_tokenizer
    from bailong.sft.data import set_chat_template

    folder = shutil.copytree(tiny_embedded, tmp_path / "m")
    tok = load_tokenizer(folder)
    set_chat_template(tok)
    model = load_model(folder)
    conversations = [["臺灣最高的山是哪一座？"], ["請用一句話介紹臺北市，並說明它位於臺灣的哪個地區。", "那高雄呢？", "謝謝"], ["hi"]]
    gen = {"max_new_tokens": 5, "do_sample": False, "repetition_penalty": 1.1}
    together = answer(model, tok, conversations, gen)
    alone = [answer(model, tok, [c], gen)[0] for c in conversations]
    assert together == alone
    assert [len(a) for a in together] == [1, 3, 1]
    assert tok.padding_side == "right"  # restored
