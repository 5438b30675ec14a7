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
    ex, truncated = encode(DIALOGUE, tok, max_length=4096)
    assert not truncated
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
    ex, truncated = encode(DIALOGUE, tok, max_length=10)
    assert truncated and len(ex["input_ids"]) == 10


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
    assert len(dialogues) == 1
    assert problems == [f"{path}:2: malformed JSON (Expecting property name enclosed in double quotes)",
                        f"{path}:3: does not end with an assistant turn"]


def test_builtin_demo_chat_is_valid_and_multi_turn():
    from bailong.sft.data import resolve_data
    from bailong.zh import simplified_chars

    dialogues, problems = read_dialogues(resolve_data("builtin:demo-chat"))
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
