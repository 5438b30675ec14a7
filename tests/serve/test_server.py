"""The OpenAI-compatible server on a free loopback port with a tiny model, called with the openai client."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from bailong.serve.generate import Sampling, load


def _chat_model(tiny_chat, folder):
    """The tiny zh chat model with the rows of tokens without a Han character zeroed, so the random model
    writes whole Han characters (not stray bytes) and streams them one by one."""
    from bailong.models import load_model, load_tokenizer
    from bailong.zh import han_count

    shutil.copytree(tiny_chat, folder)
    tok = load_tokenizer(folder)
    model = load_model(folder)
    assert model.config.tie_word_embeddings
    with torch.no_grad():
        for i in range(len(tok)):
            if not han_count(tok.decode([i])):
                model.get_input_embeddings().weight[i] = 0
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def chat_model(tiny_chat, tmp_path_factory):
    return _chat_model(tiny_chat, tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def server(chat_model):
    import uvicorn

    from bailong.serve.server import build_app

    model, tok, context = load(chat_model)
    app = build_app(model, tok, "tiny", context, Sampling(max_new_tokens=12, temperature=0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", model, tok
    srv.should_exit = True
    thread.join(10)


def _client(url):
    from openai import OpenAI

    return OpenAI(base_url=url, api_key="unused", max_retries=0)


def _greedy(model, tok, ids, n=12):
    with torch.inference_mode():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False, repetition_penalty=1.1, pad_token_id=tok.eos_token_id)
    return tok.decode(out[0, len(ids):], skip_special_tokens=True)


def test_chat_completion_equals_greedy_generation_streamed_or_not(server):
    url, model, tok = server
    client = _client(url)
    messages = [{"role": "system", "content": "你是助理。"}, {"role": "user", "content": "臺灣的首都在哪裡？"}]
    expected = _greedy(model, tok, tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])
    assert len(expected) >= 12 and "\ufffd" not in expected  # whole Han characters

    reply = client.chat.completions.create(model="tiny", messages=messages, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 12 and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="tiny", messages=messages, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # streamed, not one piece
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reply.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_completions_stop_strings_and_models(server):
    url, model, tok = server
    client = _client(url)
    prompt = "臺北市的公園"
    expected = _greedy(model, tok, tok(prompt)["input_ids"])
    reply = client.completions.create(model="tiny", prompt=prompt, temperature=0)
    assert reply.choices[0].text == expected
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="tiny", prompt=prompt, temperature=0, stream=True))
    assert streamed == expected

    # Sampling with a seed repeats itself, so a stop string taken from one run cuts the next one there.
    sampled = client.completions.create(model="tiny", prompt=prompt, temperature=1.0, seed=7).choices[0].text
    assert client.completions.create(model="tiny", prompt=prompt, temperature=1.0, seed=7).choices[0].text == sampled
    stop = sampled[5:7]
    assert sampled.index(stop) > 0
    cut = client.completions.create(model="tiny", prompt=prompt, temperature=1.0, seed=7, stop=["never", stop])
    assert cut.choices[0].text == sampled[: sampled.index(stop)]
    assert cut.choices[0].finish_reason == "stop"

    short = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=2)
    assert short.usage.completion_tokens == 2 and short.choices[0].finish_reason == "length"

    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").owned_by == "bailong"


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_requests_get_openai_error_objects_and_the_server_keeps_serving(server):
    import openai

    url, _, _ = server
    status, body = _post(url + "/chat/completions", b'{"model": "tiny", "messages": [')
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and "invalid JSON" in body["error"]["message"]

    status, body = _post(url + "/chat/completions", json.dumps({"model": "tiny", "messages": []}).encode())
    assert status == 400 and body["error"]["param"] == "messages"

    client = _client(url)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found"

    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="tiny", prompt="字" * 600)  # the tiny model's context is 512
    assert err.value.body["code"] == "context_length_exceeded" and err.value.body["param"] == "prompt"

    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="hi", n=2)

    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "還在嗎？"}], max_tokens=3)
    assert reply.usage.completion_tokens <= 3


def test_chat_repl_resets_and_saves_the_conversation(chat_model, tmp_path):
    from bailong.serve.chat import repl

    model, tok, context = load(chat_model)
    lines = iter(["你好", f"/save {tmp_path / 'chat.jsonl'}", "/reset", "再見", "/bogus", "/quit", "never read"])
    shown: list[str] = []
    history = repl(model, tok, context, Sampling(max_new_tokens=6, temperature=0), system="請用繁體中文。",
                   read=lambda _prompt: next(lines), write=shown.append)
    first = _greedy(model, tok, tok.apply_chat_template([{"role": "system", "content": "請用繁體中文。"}, {"role": "user", "content": "你好"}],
                                                        add_generation_prompt=True, return_dict=True)["input_ids"], 6)
    saved = json.loads((tmp_path / "chat.jsonl").read_text(encoding="utf-8"))
    assert saved["messages"] == [{"role": "system", "content": "請用繁體中文。"}, {"role": "user", "content": "你好"},
                                 {"role": "assistant", "content": first.strip()}]
    assert [m["content"] for m in history[:2]] == ["請用繁體中文。", "再見"]  # /reset kept only the system prompt
    assert any(s.startswith("unknown command /bogus") for s in shown)


def test_bench_answers_through_the_server_as_with_the_local_model(server, chat_model, tmp_path):
    from bailong.bench import BenchConfig, run

    url, _, _ = server
    common = {"question_ids": [1, 2], "max_new_tokens": 6}
    local = run(BenchConfig(model=chat_model, out_dir=tmp_path / "local", **common))
    remote = run(BenchConfig(answer_endpoint={"base_url": url, "model": "tiny"}, out_dir=tmp_path / "remote",
                             judge={"base_url": url, "model": "tiny", "max_retries": 0}, **common))
    answers = lambda out: [r["choices"][0]["turns"] for r in map(json.loads, (out / "answers.jsonl").read_text().splitlines())]  # noqa: E731
    assert answers(tmp_path / "remote") == answers(tmp_path / "local")
    assert "bpc" in local.stats and "bpc" not in remote.stats  # log-likelihoods need the weights
    assert sum(remote.stats["judge_status"].values()) == 2  # the tiny "judge" answered each item (or the gate did)
