"""`assay run`: the phase-1 web curation job (config.py: its settings and the registry of its stages;
job.py: the ShardJob those declare)."""
