"""A received run config starts no command and deletes no folder: a config file names only the runners of this
machine and Beam flags that tune them (the rest only on the command line), and a job writes only into an absent
or empty folder or an earlier output of its own."""
import json

import pytest
from typer.testing import CliRunner

from assay.curation.shards import OUTPUT_MARKER, claim_output, is_shard_output
from assay.groundwork.config import ConfigError
from assay.pipelines.curate.config import load_curate_config
from assay.pipelines.job.runner import FILE_FLAGS, file_flag_names
from assay.pipelines.mix import load_recipe

CODE_FLAGS = ["--environment_type=PROCESS", '--environment_config={"command": "/tmp/x.sh"}',
              "--sdk_container_image=evil/image", "--setup_file=./setup.py", "--extra_packages=evil.tar.gz",
              "--requirements_file=req.txt", "--dask_client_address=tcp://203.0.113.5:8786", "--runner=PortableRunner"]


def _config(tmp_path, runner_table: str) -> str:
    path = tmp_path / "received.toml"
    path.write_text(f'[input]\npaths = ["in.warc.gz"]\n[runner]\n{runner_table}\n')
    return str(path)


@pytest.mark.parametrize("flag", CODE_FLAGS)
def test_a_config_file_cannot_give_a_code_running_beam_flag(tmp_path, flag):
    with pytest.raises(ConfigError) as info:
        load_curate_config(_config(tmp_path, f"beam_args = [{json.dumps(flag)}]"))
    message = str(info.value)
    name = flag[2:].split("=")[0]
    assert "received.toml: runner.beam_args:" in message and repr(name) in message
    assert "on the command line only" in message


@pytest.mark.parametrize("runner", ["PortableRunner", "DataflowRunner", "FlinkRunner", "PrismRunner"])
def test_a_config_file_names_only_the_runners_of_this_machine(tmp_path, runner):
    with pytest.raises(ConfigError, match=rf"runner\.runner: '{runner}' is accepted on the command line only"):
        load_curate_config(_config(tmp_path, f'runner = "{runner}"'))
    recipe = tmp_path / "recipe.toml"  # a mix recipe's [runner] table too
    recipe.write_text(f'[runner]\nrunner = "{runner}"\n[pools.web]\nsource = "x"\n'
                      '[[phases]]\nname = "p"\ntokens = 10\nweights = { web = 1 }\n')
    with pytest.raises(ConfigError, match=r"recipe\.toml: runner\.runner: .*command line only"):
        load_recipe(str(recipe))


def test_tuning_flags_load_from_a_file_and_the_command_line_may_add_anything(tmp_path):
    from assay.pipelines.cli import app

    cfg = load_curate_config(_config(tmp_path, 'runner = "dask"\nbeam_args = ["--dask_npartitions", "8", '
                                               '"--default_sdk_harness_log_level=INFO"]'))
    assert cfg.runner.runner == "dask" and file_flag_names(cfg.runner.beam_args) == [
        "dask_npartitions", "default_sdk_harness_log_level"]
    assert file_flag_names(["--job_name", "x", "PROCESS"]) == ["job_name", "PROCESS"]  # a stray word is refused
    assert "PROCESS" not in FILE_FLAGS
    result = CliRunner().invoke(app, ["run", _config(tmp_path, ""), "--runner", "PortableRunner",
                                      "--environment_type=LOOPBACK", "--show-config"], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["runner"]
    assert shown["runner"] == "PortableRunner" and shown["beam_args"] == ["--environment_type=LOOPBACK"]


def test_a_folder_of_the_users_is_never_an_output(tmp_path):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "DESIGN.md").write_text("# the design\n")
    (project / "rejected").mkdir()
    (project / "run.json").write_text('{"name": "not assay"}')  # a run.json of someone else's
    with pytest.raises(FileExistsError, match=r"project exists and is not an output of an assay job.*another --output"):
        claim_output(str(project), "curate")
    assert not (project / OUTPUT_MARKER).exists() and not (project / ".staging").exists()
    assert (project / "docs" / "DESIGN.md").read_text() == "# the design\n"
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(FileExistsError):
        claim_output(str(file), "curate")


def test_an_absent_empty_or_earlier_output_is_claimed(tmp_path):
    claim_output(str(tmp_path / "new"), "curate")  # absent
    (tmp_path / "empty").mkdir()
    claim_output(str(tmp_path / "empty"), "curate")
    assert is_shard_output(str(tmp_path / "new")) and is_shard_output(str(tmp_path / "empty"))
    (tmp_path / "new" / ".staging").mkdir()  # a first run killed before it published: rerun into it
    claim_output(str(tmp_path / "new"), "curate")
    older = tmp_path / "older"  # written by an assay without the marker
    older.mkdir()
    (older / "docs").mkdir()
    (older / "run.json").write_text(json.dumps({"job": "curate", "versions": {}, "counts": {"kept": 1}}))
    claim_output(str(older), "curate")
    killed = tmp_path / "killed"  # an older assay's first run, killed before it published
    (killed / ".staging" / "docs").mkdir(parents=True)
    claim_output(str(killed), "curate")


def test_assay_run_refuses_a_users_folder_before_running_anything(tmp_path):
    from assay.pipelines.cli import app

    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "DESIGN.md").write_text("# the design\n")
    config = tmp_path / "run.toml"
    config.write_text('stages = ["extract"]\n[input]\npaths = ["nothing.warc.gz"]\n')
    result = CliRunner().invoke(app, ["run", str(config), "--output", str(project)], terminal_width=300)
    assert result.exit_code == 2 and "is not an output of an assay job" in result.output, result.output
    assert sorted(p.name for p in project.rglob("*")) == ["DESIGN.md", "docs"]


def test_a_classifier_model_directory_replaces_only_a_model_directory(tmp_path):
    from assay.classifiers.artifact import save_model

    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "DESIGN.md").write_text("# the design\n")
    with pytest.raises(FileExistsError, match="is not a model directory"):
        save_model(None, str(project), {}, "")  # refused before the classifier is looked at
    assert (project / "docs" / "DESIGN.md").read_text() == "# the design\n"
