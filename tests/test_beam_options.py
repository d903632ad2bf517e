"""Runner selection: the local default never touches the network; remote runners get the user's flags."""
import pytest
from apache_beam.options.pipeline_options import (
    DebugOptions,
    DirectOptions,
    GoogleCloudOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from assay.pipelines.job.runner import RunnerConfig, build_options


def test_local_is_fn_api_runner_with_worker_processes():
    runner, options = build_options(RunnerConfig(workers=3, mode="multi_processing"))
    assert isinstance(runner, FnApiRunner)
    assert options.view_as(DirectOptions).direct_num_workers == 3
    # the worker processes start through our quiet entry point
    assert "assay.pipelines.job.beam_worker" in runner._default_environment.command_string
    _, threads = build_options(RunnerConfig(workers=2, mode="multi_threading"))
    assert threads.view_as(DirectOptions).direct_running_mode == "multi_threading"


def test_dataflow_options_are_built_from_passthrough_flags():
    runner, options = build_options(RunnerConfig("DataflowRunner", beam_args=[
        "--project=my-project", "--region=europe-west1", "--temp_location=gs://bucket/tmp",
        "--max_num_workers=50", "--experiments=use_runner_v2"]))
    assert runner is None
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == ("my-project", "europe-west1", "gs://bucket/tmp")
    assert options.view_as(WorkerOptions).max_num_workers == 50
    assert "use_runner_v2" in options.view_as(DebugOptions).experiments
    assert options.view_as(SetupOptions).setup_file.endswith("setup.py")  # ships assay to the workers


def test_user_setup_file_is_kept():
    _, options = build_options(RunnerConfig("DataflowRunner", beam_args=["--requirements_file=req.txt"]))
    assert options.view_as(SetupOptions).requirements_file == "req.txt"
    assert options.view_as(SetupOptions).setup_file is None


@pytest.mark.parametrize("name,flag", [("FlinkRunner", "--flink_master=localhost:8081"),
                                       ("SparkRunner", "--spark_master_url=spark://h:7077")])
def test_flink_and_spark_names_pass_through(name, flag):
    runner, options = build_options(RunnerConfig(name, beam_args=[flag]))
    assert runner is None and options.view_as(StandardOptions).runner == name
    assert flag.split("=", 1)[1] in options.get_all_options().values()


def test_prism_and_direct_runner_are_refused():
    for name in ("DirectRunner", "PrismRunner"):
        with pytest.raises(ValueError, match="local"):
            build_options(RunnerConfig(name))


def test_bad_runner_settings_are_clear_errors():
    with pytest.raises(ValueError, match="workers"):
        RunnerConfig(workers=0)
    with pytest.raises(ValueError, match="mode"):
        RunnerConfig(mode="threads")


def test_dataflow_stages_assay_and_its_shipped_models_offline(tmp_path):
    """What Dataflow workers receive, built here without any cloud access: assay as an sdist from setup.py,
    with every package and the shipped classifier models inside."""
    import tarfile

    from apache_beam.runners.portability.stager import Stager

    _, options = build_options(RunnerConfig("DataflowRunner", beam_args=["--project=p", "--region=r",
                                                                        "--temp_location=gs://b/tmp"]))
    Stager.create_job_resources(options, str(tmp_path))
    sdists = [p for p in tmp_path.iterdir() if p.name.endswith(".tar.gz")]
    assert len(sdists) == 1
    names = tarfile.open(sdists[0]).getnames()
    for package in ("groundwork", "curation", "classifiers", "synth", "pipelines", "trainer", "kernels"):
        assert any(n.endswith(f"/assay/{package}/__init__.py") for n in names), package
    for model in ("edu-fasttext", "knowledge-fasttext"):
        assert any(n.endswith(f"shipped_models/{model}/model.bin") for n in names), model
    assert not any("/data/quality/" in n or "/.venv/" in n for n in names)
