from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bailong.config import StageConfig


class Endpoint(BaseModel):
    """A model behind any OpenAI-compatible endpoint (`bailong serve`, vLLM, OpenAI, ...). The API key is read
    from the environment only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="endpoint, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="model name at that endpoint")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (never written anywhere)")
    timeout: float = Field(60.0, gt=0, description="seconds per call")
    max_retries: int = Field(3, ge=0, description="retries with backoff on 429/5xx/timeouts")


class BenchConfig(StageConfig):
    """Answer benchmark questions with a model, apply the Traditional Chinese checks, score bits/char."""

    bookkeeping = ("judge_cache",)

    model: Path | None = Field(None, description="model folder to evaluate (the last training stage's model/); bits/char and "
                               "TMMLU need it")
    compare_models: dict[str, Path] = Field(default_factory=dict, description="label: model folder, evaluated the same way after "
                                            "`model` and put side by side in comparison.md/.html; in a recipe a value may "
                                            "also be an earlier stage (embed, pretrain, sft, preference) or 'base'")
    answer_endpoint: Endpoint | None = Field(None, description="answer the questions through this OpenAI-compatible endpoint "
                                             "(e.g. `bailong serve MODEL`, or vLLM) instead of generating with `model`")
    questions: str = Field("builtin:bailong-bench", description="FastChat question.jsonl, or builtin:bailong-bench")
    reference_answers: Path | None = Field(None, description="FastChat reference answers (question_id, choices[0].turns) shown "
                                           "to the judge, e.g. MT-Bench's reference_answer_gpt-4.jsonl")
    question_ids: list[int] | None = Field(None, description="evaluate only these question ids (default: all; [] for none, "
                                             "e.g. to run only bits/char and TMMLU)")
    out_dir: Path = Field(description="output folder")
    max_new_tokens: int = Field(128, gt=0, description="tokens generated per turn")
    batch_size: int = Field(8, gt=0, description="questions answered together (left-padded batches), or concurrent "
                            "requests to answer_endpoint")
    do_sample: bool = Field(False, description="sample (temperature/top_p/top_k) instead of greedy decoding")
    temperature: float = Field(0.6, gt=0, description="sampling temperature (Bailong's examples: 0.6)")
    top_p: float = Field(0.9, gt=0, le=1, description="nucleus sampling (Bailong: 0.9)")
    top_k: int = Field(40, ge=0, description="top-k sampling (Bailong: 40)")
    repetition_penalty: float = Field(1.1, gt=0, description="repetition penalty (Bailong: 1.1)")
    eval_corpus: Path | None = Field(None, description="held-out JSONL for bits/char")
    eval_chars: int = Field(5_000, gt=0, description="characters of held-out text scored")
    judge: Endpoint | None = Field(None, description="LLM judge at an OpenAI-compatible endpoint; without one only the "
                                   "deterministic checks run")
    judge_cache: Path | None = Field(None, description="SQLite cache of judgments (default: out_dir/judge_cache.sqlite); "
                                     "share one between runs to never pay twice for the same judgment")
    seed: int = Field(0, description="sampling seed")
    tmmlu: Path | None = Field(None, description="multiple-choice accuracy by log-likelihood: a TMMLU-style folder "
                               "(subjects/<subject>/data.csv, e.g. ../shared/data/eval/tmmlu) or a TTQA/MMLU-style JSON/JSONL "
                               "file (question, choices, answer, optional subject)")
    tmmlu_shots: int = Field(0, ge=0, description="demonstrations per prompt (each subject's first k questions, not scored)")
    drcd: Path | None = Field(None, description="DRCD/SQuAD JSON, or chat JSONL whose assistant turns are gold answers (e.g. "
                              "../shared/data/sft/drcd_dev_multiturn_qa.jsonl), for extractive QA exact match and F1")
    drcd_limit: int | None = Field(300, gt=0, description="score at most this many questions (null: all)")
    translation: list[Path] | None = Field(None, description="[english.txt, zh_tw.txt], line-aligned, for EN->zh-TW and "
                                           "zh-TW->EN BLEU and chrF (sacrebleu), e.g. ../shared/data/parallel/tw_laws_sample3000.*")
    translation_limit: int | None = Field(100, gt=0, description="translate at most this many pairs each way (null: all)")
    tmmlu_per_subject: int | None = Field(None, gt=0, description="score at most this many questions per subject (default: all)")
    tmmlu_backend: Literal["builtin", "lm-eval"] = Field("builtin", description="who scores tmmlu: bailong's own code, or "
                                                       "lm-evaluation-harness on tasks written to out_dir/lm_eval_tasks "
                                                       "(same prompts and demonstrations, same accuracy; slower on CPU)")

    def input_paths(self) -> dict[str, Path]:
        paths = {"model": self.model, "eval_corpus": self.eval_corpus, "tmmlu": self.tmmlu, "reference_answers": self.reference_answers,
                 "drcd": self.drcd, **{f"translation_{i}": p for i, p in enumerate(self.translation or [])},
                 **{f"compare_{label}": p for label, p in self.compare_models.items()}}
        if not self.questions.startswith("builtin:"):
            paths["questions"] = Path(self.questions)
        return {k: v for k, v in paths.items() if v}
