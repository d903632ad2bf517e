"""A run config file: TOML with `[model]`, `[train]` and `[eval]` tables, read into config.RunConfig.

`[model]` may name a preset (`preset = "mini-10m"`) and override any of its fields. Unknown keys and values
of the wrong type are errors naming the file and field, so a typo never silently trains the wrong model.
Apart from config.py because presets are ModelConfigs: config.py cannot read the preset table without an
import cycle.
"""
from __future__ import annotations

from typing import Any

from assay.groundwork.config import ConfigError, from_dict, load_config, to_dict
from assay.trainer.config import EvalConfig, ModelConfig, RunConfig, TrainConfig
from assay.trainer.presets import preset_config

TABLES = ("model", "train", "eval")


def model_config_from_dict(table: dict[str, Any], where: str = "model") -> ModelConfig:
    """A [model] table: an optional `preset` name, then fields that override the preset's."""
    table = dict(table)
    preset = table.pop("preset", None)
    base = {} if preset is None else to_dict(preset_config(preset))
    return from_dict(ModelConfig, {**base, **table}, where)


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A whole run config: a config file's tables, or the `config` a checkpoint stores."""
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise ConfigError(f"unknown tables {unknown}; a trainer config has [model], [train] and [eval]")
    return RunConfig(model=model_config_from_dict(data.get("model", {})),
                     train=from_dict(TrainConfig, data.get("train", {}), "train"),
                     eval=from_dict(EvalConfig, data.get("eval", {}), "eval"))


def load_run_config(path: str) -> RunConfig:
    """The run config in the TOML file `path` (see docs/trainer.md); errors start with the file's path."""
    return load_config(RunConfig, path, build=run_config_from_dict)
