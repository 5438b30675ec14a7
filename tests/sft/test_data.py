import json

import pytest

from bailong.models import load_tokenizer
from bailong.sft.data import encode, read_dialogues, set_chat_template, validate

DIALOGUE = [
    {"role": "system", "content": "請用臺灣慣用的繁體中文回答。"},
    {"role": "user", "content": "捷運可以吃東西嗎？"},
    {"role": "assistant", "content": "不行，捷運付費區內禁止飲食。"},
    {"role": "user", "content": "那喝水呢？"},
    {"role": "assistant", "content": "喝水也不可以，請出站後再喝。"},
]


@pytest.fixture(scope="module")
def tok(tiny_embedded):
    tok = load_tokenizer(tiny_embedded)
    set_chat_template(tok)
    return tok


def test_labels_are_exactly_the_assistant_turns(tok):
    ex, length = encode(DIALOGUE, tok, max_length=4096)
    assert length == len(ex["input_ids"])
    spans, current = [], []
    for t, label in zip(ex["input_ids"], ex["labels"]):
        if label == -100:
            if current:
                spans.append(tok.decode(current))
                current = []
        else:
            assert label == t
            current.append(t)
    if current:
        spans.append(tok.decode(current))
    assert spans == ["不行，捷運付費區內禁止飲食。<|im_end|>", "喝水也不可以，請出站後再喝。<|im_end|>"]


def test_template_matches_generation_prompt(tok):
    """What the model is trained on is what it sees when asked to answer."""
    prompt = tok.apply_chat_template(DIALOGUE[:2], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(DIALOGUE[:3], tokenize=False)
    assert full.startswith(prompt) and full[len(prompt):] == "不行，捷運付費區內禁止飲食。<|im_end|>\n"


def test_truncation_is_reported(tok):
    ex, length = encode(DIALOGUE, tok, max_length=10)
    assert length > 10 and len(ex["input_ids"]) == 10


@pytest.mark.parametrize("messages,reason", [
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "two user turns in a row"),
    ([{"role": "robot", "content": "a"}], "unknown role 'robot'"),
    ([{"role": "user", "content": " "}, {"role": "assistant", "content": "b"}], "empty content in message 1"),
    ([{"role": "user", "content": "a"}], "does not end with an assistant turn"),
    ([], "no messages"),
])
def test_validation_reasons(messages, reason):
    assert validate(messages) == reason


def test_bad_lines_are_counted_with_file_and_line(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join([json.dumps({"messages": DIALOGUE}, ensure_ascii=False), "{oops",
                               json.dumps({"messages": DIALOGUE[1:2]})]) + "\n", encoding="utf-8")
    dialogues, problems = read_dialogues(path)
    assert dialogues == [(f"{path}:1", DIALOGUE)]
    assert problems == [f"{path}:2: malformed JSON (Expecting property name enclosed in double quotes)",
                        f"{path}:3: does not end with an assistant turn"]


def test_builtin_demo_chat_is_valid_and_multi_turn():
    from bailong.sft.data import resolve_data
    from bailong.zh import simplified_chars

    rows, problems = read_dialogues(resolve_data("builtin:demo-chat"))
    dialogues = [d for _, d in rows]
    assert problems == [] and len(dialogues) >= 100
    assert sum(sum(m["role"] == "user" for m in d) for d in dialogues) / len(dialogues) >= 3
    assert not [m["content"] for d in dialogues for m in d if simplified_chars(m["content"])]


def test_llama2_template_labels_every_answer(shared_data, tmp_path):
    import shutil

    from bailong.sft.data import LLAMA2_TEMPLATE

    shutil.copy(shared_data.parent / "fixtures" / "llama2-tokenizer" / "tokenizer.model", tmp_path / "tokenizer.model")
    tok = load_tokenizer(tmp_path)
    assert set_chat_template(tok) == "llama2" and tok.chat_template == LLAMA2_TEMPLATE
    text = tok.apply_chat_template(DIALOGUE, tokenize=False)
    assert text == ("<s>[INST] <<SYS>>\n請用臺灣慣用的繁體中文回答。\n<</SYS>>\n\n捷運可以吃東西嗎？ [/INST] 不行，捷運付費區內禁止飲食。 </s>"
                    "<s>[INST] 那喝水呢？ [/INST] 喝水也不可以，請出站後再喝。 </s>")
    ex, _ = encode(DIALOGUE, tok, max_length=4096)
    labelled = [t if label != -100 else None for t, label in zip(ex["input_ids"], ex["labels"])]
    spans, current = [], []
    for t in labelled + [None]:
        if t is None and current:
            spans.append(tok.decode(current))
            current = []
        elif t is not None:
            current.append(t)
    assert [s.strip() for s in spans] == ["不行，捷運付費區內禁止飲食。 </s>", "喝水也不可以，請出站後再喝。 </s>"]


def test_chat_batches_split_one_global_batch_across_processes():
    import torch

    from bailong.sft.data import chat_batches

    examples = [{"input_ids": [i] * (i + 1), "labels": [i] * (i + 1)} for i in range(6)]
    whole = next(chat_batches(examples, batch_size=4, pad_id=0, seed=1))
    parts = [next(chat_batches(examples, batch_size=2, pad_id=0, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    # each process pads to its own longest row; unpadded, the rows are the 1-process batch's rows
    rows = [ids[mask.bool()].tolist() for p in parts for ids, mask in zip(p["input_ids"], p["attention_mask"])]
    assert rows == [ids[mask.bool()].tolist() for ids, mask in zip(whole["input_ids"], whole["attention_mask"])]
    assert all(isinstance(p["input_ids"], torch.Tensor) for p in parts)


def test_sharegpt_and_alpaca_rows_become_the_same_dialogues(tmp_path):
    sharegpt = {"system": DIALOGUE[0]["content"], "conversations": [
        {"from": "human", "value": DIALOGUE[1]["content"]}, {"from": "gpt", "value": DIALOGUE[2]["content"]},
        {"from": "human", "value": DIALOGUE[3]["content"]}, {"from": "gpt", "value": DIALOGUE[4]["content"]}]}
    alpaca = {"instruction": "把這句翻成英文。", "input": "捷運上不能吃東西。", "output": "No eating on the MRT."}
    bad = [{"conversations": [{"from": "robot", "value": "嗨"}]}, {"instruction": "只有指令", "output": ""}, {"text": "沒有對話"}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [sharegpt, alpaca, *bad]) + "\n", encoding="utf-8")
    dialogues, problems = read_dialogues(path)
    assert [d for _, d in dialogues] == [DIALOGUE, [
        {"role": "user", "content": "把這句翻成英文。\n\n捷運上不能吃東西。"}, {"role": "assistant", "content": "No eating on the MRT."}]]
    assert problems == [f"{path}:3: unknown role 'robot'", f"{path}:4: empty content in message 2",
                        f"{path}:5: no messages, conversations (ShareGPT) or instruction/output (Alpaca) field"]


def test_shared_drcd_multiturn_set_reads_cleanly(shared_data):
    dialogues, problems = read_dialogues(shared_data / "sft" / "drcd_dev_multiturn_qa.jsonl")
    assert problems == [] and len(dialogues) > 100
    assert all(sum(m["role"] == "user" for m in d) >= 2 for _, d in dialogues)


def test_pack_dialogues_best_fit_keeps_every_token_with_restarting_positions():
    from bailong.sft.data import pack_dialogues

    examples = [{"input_ids": [n] * n, "labels": [-100] + [n] * (n - 1)} for n in (1, 4, 5, 3, 2)]
    rows = pack_dialogues(examples, max_length=6)
    assert [r["input_ids"] for r in rows] == [[5] * 5 + [1], [4] * 4 + [2] * 2, [3] * 3]
    assert [r["position_ids"] for r in rows] == [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 0, 1], [0, 1, 2]]
    assert rows[1]["labels"] == [-100, 4, 4, 4, -100, 2]


def test_packed_dialogues_do_not_attend_to_each_other(tok, tiny_embedded):
    import torch

    from bailong.models import load_model
    from bailong.sft.data import collate, pack_dialogues

    model = load_model(tiny_embedded).eval()
    a, _ = encode(DIALOGUE, tok, max_length=4096)
    b, _ = encode(DIALOGUE[1:3], tok, max_length=4096)
    (row,) = pack_dialogues([a, b], max_length=4096)
    packed = collate([row], pad_id=0)
    assert "attention_mask" not in packed
    with torch.no_grad():  # use_cache=False as in training: transformers skips packed detection with a KV cache
        together = model(**{k: v for k, v in packed.items() if k != "labels"}, use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([e["input_ids"]]), use_cache=False).logits[0] for e in (a, b)]
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)
    assert packed["labels"][0].tolist() == a["labels"] + b["labels"]


def test_a_base_template_with_generation_markers_is_kept(tiny_embedded):
    from bailong.sft.data import CHATML_TEMPLATE

    tok = load_tokenizer(tiny_embedded)
    own = CHATML_TEMPLATE.replace("'<|im_start|>assistant\\n'", "'<|im_start|>助理\\n'")
    tok.chat_template = own
    assert set_chat_template(tok) == "base" and tok.chat_template == own
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # no markers: replaced
    assert set_chat_template(tok) == "chatml" and tok.chat_template == CHATML_TEMPLATE
