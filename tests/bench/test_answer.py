"""Local answering: batched, left-padded, multi-turn generation equals one conversation at a time."""

from __future__ import annotations


def test_batched_answers_equal_unbatched(tiny_chat):
    from bailong.bench.generation import answer
    from bailong.models import load_model, load_tokenizer

    tok, model = load_tokenizer(tiny_chat), load_model(tiny_chat)
    conversations = [["臺灣最高的山是哪一座？"], ["請用一句話介紹臺北市，並說明它位於臺灣的哪個地區。", "那高雄呢？", "謝謝"], ["hi"]]
    gen = {"max_new_tokens": 5, "do_sample": False, "repetition_penalty": 1.1}
    together = answer(model, tok, conversations, gen)
    alone = [answer(model, tok, [c], gen)[0] for c in conversations]
    assert together == alone
    assert [len(a) for a in together] == [1, 3, 1]
    assert tok.padding_side == "right"  # restored
