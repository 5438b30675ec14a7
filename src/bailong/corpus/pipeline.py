"""The corpus stage as datatrove pipelines, chained by `depends` and run by one executor kind.

    prepare   read sources -> clean/convert/filter -> work/prepared/<rank>.jsonl          (tasks)
    exact     signatures (tasks) -> find duplicates (1)                                    optional
    minhash   signatures (tasks) -> LSH buckets (buckets) -> clusters (1)                  optional
    semantic  embed (tasks) -> k-means + drop near neighbours (1)                         optional
    formix    dedup filters -> per-source characters left (tasks)                          when mixing
    final     dedup filters -> counts -> hold out, mix, write shards (tasks)

Every later pipeline reads work/prepared with the same number of tasks, so a task sees the same
documents in the same order in each: that is what datatrove's index-based dedup filters rely on.
work/prepared is plain JSONL: it is read two to four times, and zstd cost ~1 s per 100 MB each way.
Completed tasks are skipped on rerun (datatrove's completions in work/logs/<pipeline>).
"""

from __future__ import annotations

from pathlib import Path

from bailong.config import BailongError
from bailong.corpus.config import CorpusConfig


def _text(doc) -> bytes:
    return doc.text.encode("utf-8")  # bytes: xxhash 4 refuses str


def build(cfg: CorpusConfig, work: Path) -> list[tuple[str, list, int]]:
    """(name, steps, tasks) in order."""
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupFilter, ExactDedupSignature, ExactFindDedups
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from bailong.corpus.steps import CharMinhashSignature, Clean, Count, MixAndSplit, ReadSources

    tasks = cfg.executor.tasks
    tally, prepared = work / "tally", str(work / "prepared")
    rejected = work / "final" / "rejected" if cfg.write_rejected else None

    def reader():
        return JsonlReader(prepared, glob_pattern="*.jsonl")

    def excluded(reason: str):
        if rejected is None:
            return None
        return JsonlWriter(str(rejected / reason), output_filename="${rank}.jsonl.gz")

    pipelines = [("prepare", [ReadSources(list(cfg.sources), tally), Clean(cfg, tally, rejected),
                              JsonlWriter(prepared, output_filename="${rank}.jsonl", compression=None)], tasks)]
    filters = []  # the dedup filters every later reading of work/prepared applies, in order
    if cfg.exact_dedup:
        exact = ExactDedupConfig(content_getter=_text)
        pipelines += [("exact-signatures", [reader(), ExactDedupSignature(str(work / "exact" / "sigs"), exact)], tasks),
                      ("exact-find", [ExactFindDedups(str(work / "exact" / "sigs"), str(work / "exact" / "dups"), exact)], 1)]
        filters.append(lambda: [ExactDedupFilter(str(work / "exact" / "dups"), exact, exclusion_writer=excluded("exact_duplicate")),
                                Count(tally, "after-exact")])
    if cfg.minhash.enabled:
        mh = MinhashConfig(n_grams=cfg.minhash.ngram, num_buckets=cfg.minhash.buckets, hashes_per_bucket=cfg.minhash.hashes_per_bucket,
                           seed=cfg.seed + 1)
        sigs, buckets, remove = (str(work / "minhash" / k) for k in ("sigs", "buckets", "remove"))
        pipelines += [("minhash-signatures", [reader(), *_steps(filters, quiet=True), CharMinhashSignature(sigs, mh, cfg.minhash.ngram)], tasks),
                      ("minhash-buckets", [MinhashDedupBuckets(sigs, buckets, config=mh)], cfg.minhash.buckets),
                      ("minhash-cluster", [MinhashDedupCluster(buckets, remove, config=mh)], 1)]
        filters.append(lambda: [MinhashDedupFilter(remove, exclusion_writer=excluded("near_duplicate")), Count(tally, "after-minhash")])
    if cfg.semantic.enabled:
        from bailong.corpus.semantic import SemanticCluster, SemanticEmbed, SemanticFilter

        folder = work / "semantic"
        pipelines += [("semantic-embed", [reader(), *_steps(filters, quiet=True), SemanticEmbed(cfg.semantic, folder)], tasks),
                      ("semantic-cluster", [SemanticCluster(cfg.semantic, folder, tasks, cfg.seed)], 1)]
        filters.append(lambda: [SemanticFilter(folder, exclusion_writer=excluded("semantic_duplicate")), Count(tally, "after-semantic")])
    if any(s.weight for s in cfg.sources):
        pipelines.append(("formix", [reader(), *_steps(filters, quiet=True), Count(tally, "formix")], tasks))
    pipelines.append(("final", [reader(), *_steps(filters), MixAndSplit(cfg, work / "final", tally)], tasks))
    return pipelines


def _steps(filters: list, quiet: bool = False) -> list:
    """Fresh instances of the dedup filters; quiet: without their Count steps (a re-read, not the final tally)."""
    from bailong.corpus.steps import Count

    steps = [step for make in filters for step in make()]
    return [s for s in steps if not (quiet and isinstance(s, Count))]


class NothingKept(Exception):
    """The prepare pipeline kept no document: nothing for the later pipelines to read."""


def run(cfg: CorpusConfig, work: Path) -> None:
    """Run (local, Ray) or submit (Slurm) the chained pipelines."""
    opts = dict(cfg.executor.options)
    previous = None
    executors = []
    for name, steps, tasks in build(cfg, work):
        common = {"pipeline": steps, "tasks": tasks, "logging_dir": str(work / "logs" / name), "depends": previous,
                  "skip_completed": True}
        if cfg.executor.kind == "local":
            from datatrove.executor import LocalPipelineExecutor

            previous = LocalPipelineExecutor(**common, workers=min(cfg.executor.workers, tasks), **opts)
        elif cfg.executor.kind == "slurm":
            from datatrove.executor import SlurmPipelineExecutor

            previous = SlurmPipelineExecutor(**common, job_name=f"bailong-corpus-{name}", workers=cfg.executor.workers, **opts)
        else:
            from datatrove.executor import RayPipelineExecutor

            previous = RayPipelineExecutor(**common, workers=cfg.executor.workers, **opts)
        executors.append(previous)
    if cfg.executor.kind != "slurm":  # run prepare alone first: an empty result is an error, not a crash further on
        executors[0].run()
        if not any((work / "prepared").glob("*.jsonl")):
            raise NothingKept
    previous.run()
    if cfg.executor.kind == "slurm" and not (work / "logs" / "final" / "completions").is_dir():
        raise BailongError(f"corpus: Slurm jobs submitted (logs in {work / 'logs'}); run the same command again once they "
                           "finish to assemble the output and the stats")
