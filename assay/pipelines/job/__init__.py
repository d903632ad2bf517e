"""The one job abstraction (ShardJob: a source and a list of steps -> staged docs and ledger -> publish ->
run record) and the Beam machinery under it: runner config and execution, DoFns, dedup, classifier scoring,
deterministic shard writes, the funnel, the local watchdog and progress view, the local Dask cluster.

Jobs (assay/pipelines/curate/, score_shards.py, assay/pipelines/synth_jobs/) are declarations over this room and import
only from it; nothing here knows which job it runs.
"""
