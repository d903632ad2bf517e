"""The phase-1 web curation job of `assay run`: read -> extract -> langid -> filters -> pii -> dedup ->
classifiers -> shards, as a ShardJob declared by a CurateConfig (the stages of assay/pipelines/curate/config.py's
STAGES, in their default order; tests/test_registries.py holds this line to it).

On a runner whose workers are other machines (Dataflow, Flink, Spark), the model files the stages load
(the language-ID model, classifier folders other than the shipped ones, which travel inside assay's own
package, files a filter's arguments name: each stage's `upload_files` in STAGES) are uploaded under the job's
--temp_location first, and the workers copy them from there
(assay/curation/model_files.py).
"""
from __future__ import annotations

import copy

from assay.groundwork.config import to_dict
from assay.pipelines.curate.config import STAGES, CurateConfig
from assay.pipelines.job.runner import DASK_NAMES, LOCAL_NAMES
from assay.pipelines.job.shard_job import JobResult, ShardJob
from assay.pipelines.job.sources import InputFiles


def curation_job(cfg: CurateConfig, output: str | None = None) -> ShardJob:
    return ShardJob("curate", InputFiles(cfg.input.paths, cfg.input.reader, workers=cfg.runner.workers), cfg.steps(),
                    output or cfg.output.path, cfg.runner, settings=to_dict(cfg),
                    docs_per_shard=cfg.output.docs_per_shard, ledger_per_shard=cfg.output.ledger_per_shard,
                    histograms=cfg.output.histograms, ledger_full_text=cfg.output.ledger_full_text)


def run_curation(cfg: CurateConfig, output: str | None = None, show_progress: bool | None = None) -> JobResult:
    """Run the pipeline to completion and publish its output; the result holds the funnel."""
    if cfg.runner.runner not in LOCAL_NAMES | DASK_NAMES:
        cfg = with_staged_models(cfg)
    return curation_job(cfg, output).run(show_progress)


def with_staged_models(cfg: CurateConfig) -> CurateConfig:
    """A copy of `cfg` whose model files are uploaded under the runner's --temp_location and named by their
    remote paths. Without a remote --temp_location the workers must see the same paths (a shared disk)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    from assay.curation.model_files import is_remote, stage

    temp = PipelineOptions(cfg.runner.beam_args).view_as(GoogleCloudOptions).temp_location
    if not temp or not is_remote(temp):
        return cfg
    staged = copy.deepcopy(cfg)
    for name in cfg.stages:  # each stage's registry entry says which of its files to upload
        if STAGES[name].upload_files:
            STAGES[name].upload_files(staged, lambda path: stage(path, temp))
    return staged
