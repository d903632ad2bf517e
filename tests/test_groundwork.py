"""The basement: atomic folders (the old one stays until the new one is complete) and config errors that
name the whole path of a field a dataclass checks itself (FieldError)."""
import os
from dataclasses import dataclass, field
from typing import Literal

import pytest

from assay.groundwork.atomic import atomic_folder
from assay.groundwork.config import ConfigError, FieldError, check_choices, from_dict


def test_atomic_folder_replaces_only_a_complete_folder(tmp_path):
    final = tmp_path / "model"
    with atomic_folder(str(final)) as work:
        (open(os.path.join(work, "weights.bin"), "w")).write("v1")
        assert not final.exists()  # nothing at the final name while the folder is being built
    assert (final / "weights.bin").read_text() == "v1"
    with pytest.raises(RuntimeError, match="killed halfway"):
        with atomic_folder(str(final)) as work:
            (open(os.path.join(work, "weights.bin"), "w")).write("v2, half written")
            raise RuntimeError("killed halfway")
    assert (final / "weights.bin").read_text() == "v1"  # the old folder, untouched
    assert sorted(os.listdir(tmp_path)) == ["model"]  # and no work folder left beside it
    with atomic_folder(str(final)) as work:
        (open(os.path.join(work, "weights.bin"), "w")).write("v2")
    assert (final / "weights.bin").read_text() == "v2" and sorted(os.listdir(tmp_path)) == ["model"]


@dataclass
class Pool:
    source: str = ""
    max_repeats: int = 1

    def __post_init__(self) -> None:
        if self.max_repeats < 1:
            raise FieldError("max_repeats", f"must be >= 1, got {self.max_repeats}")
        if not self.source:
            raise ValueError("a pool needs a source")


@dataclass
class Recipe:
    pools: dict[str, Pool] = field(default_factory=dict)
    phases: list[Pool] = field(default_factory=list)


@pytest.mark.parametrize("data, message", [
    ({"pools": {"web": {"source": "x", "max_repeats": 0}}}, "pools.web.max_repeats: must be >= 1, got 0"),
    ({"phases": [{"source": "x"}, {"source": "y", "max_repeats": -2}]}, "phases[1].max_repeats: must be >= 1"),
    ({"pools": {"web": {"max_repeats": 2}}}, "pools.web: a pool needs a source"),  # a plain ValueError: the table
])
def test_a_field_error_gets_the_whole_path_of_its_field(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Recipe, data)
    assert str(err.value).startswith(message)
    with pytest.raises(ConfigError, match="^max_repeats: must be >= 1"):
        from_dict(Pool, {"source": "x", "max_repeats": 0})  # at the top level: the field alone


@dataclass
class Choices:
    view: Literal["text", "prose"] | Literal[""] = ""
    mode: Literal["drop", "annotate"] | None = None

    def __post_init__(self) -> None:
        check_choices(self)


def test_literal_fields_are_checked_from_a_file_and_in_code():
    with pytest.raises(ConfigError, match=r"^stages\[0\]\.view: expected one of \['text', 'prose', ''\], got 'code'"):
        from_dict(Recipe2, {"stages": [{"view": "code"}]})
    with pytest.raises(FieldError, match=r"^mode: must be one of \['drop', 'annotate'\], got 'keep'"):
        Choices(mode="keep")
    assert Choices(view="prose", mode=None).view == "prose"


@dataclass
class Recipe2:
    stages: list[Choices] = field(default_factory=list)
