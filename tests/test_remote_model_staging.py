"""`assay run` on a runner whose workers are other machines: the model files the stages load are uploaded under
--temp_location and the workers copy them from there. Checked against a real S3-compatible server process
(moto's, on loopback) through Beam's own S3 filesystem, with a worker in a fresh process, and the job graph
(every DoFn serialised) built offline."""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from assay.pipelines.curate.config import CurateConfig
from assay.pipelines.curate.job import curation_job, with_staged_models
from assay.pipelines.job.runner import RunnerConfig

BUCKET = "assay-staging-test"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def s3_args():
    """Beam flags for a fresh S3-compatible server process on loopback with one bucket."""
    import boto3

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the S3-compatible test server did not start") from None
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        args = [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=test", "--s3_secret_access_key=test",
                "--s3_region_name=us-east-1"]
        from apache_beam.io.filesystems import FileSystems
        from apache_beam.options.pipeline_options import PipelineOptions

        FileSystems.set_options(PipelineOptions(args))
        yield args
    finally:
        proc.kill()
        proc.wait()


def _config(s3_args, tmp_path) -> CurateConfig:
    """The default pipeline on a remote runner, with one classifier folder of the user's own."""
    mine = tmp_path / "my-edu"
    shutil.copytree(os.path.join(ROOT, "assay", "classifiers", "shipped_models", "edu-fasttext"), mine)
    cfg = CurateConfig()
    cfg.classifiers[0].model_dir = str(mine)
    cfg.runner = RunnerConfig("FlinkRunner", beam_args=[f"--temp_location=s3://{BUCKET}/tmp", *s3_args])
    return cfg


def test_models_are_staged_by_content_and_workers_load_them(s3_args, tmp_path):
    import boto3

    cfg = _config(s3_args, tmp_path)
    staged = with_staged_models(cfg)
    prefix = f"s3://{BUCKET}/tmp/assay-models/"
    assert staged.langid.model_path.startswith(prefix) and staged.langid.model_path.endswith("/lid.176.ftz")
    assert staged.classifiers[0].model_dir.startswith(prefix) and staged.classifiers[0].model_dir.endswith("/my-edu")
    assert staged.classifiers[1].model_dir == "knowledge"  # shipped models travel inside assay's own package
    assert cfg.langid.model_path == "" and cfg.classifiers[0].model_dir == str(tmp_path / "my-edu")  # a copy

    endpoint = s3_args[0].split("=", 1)[1]
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    listed = lambda: sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))  # noqa: E731
    keys = listed()
    assert len(keys) == 3 and any(k.endswith("/my-edu/model.bin") for k in keys), keys
    again = with_staged_models(_config(s3_args, tmp_path / "again"))
    assert again.classifiers[0].model_dir == staged.classifiers[0].model_dir  # same content, same place
    assert listed() == keys

    # a worker: a fresh process that has only the remote paths and the pipeline options
    worker = f"""
import sys
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
FileSystems.set_options(PipelineOptions({s3_args!r}))
from assay.classifiers.artifact import load_model
from assay.curation.langid import LanguageIdentifier
identify = LanguageIdentifier({staged.langid.model_path!r})
lang, p = identify.predict("The cache keeps a copy of every response it serves.")
clf, meta = load_model({staged.classifiers[0].model_dir!r})
print(lang, meta["kind"], clf.score(["A tutorial on indexes: a B-tree keeps keys in order."])[0])
"""
    out = subprocess.run([sys.executable, "-c", worker], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    lang, kind, score = out.stdout.split()[-3:]
    from assay.classifiers.artifact import load_model

    local, _ = load_model(str(tmp_path / "my-edu"))
    assert (lang, kind) == ("en", "fasttext")
    assert float(score) == pytest.approx(local.score(["A tutorial on indexes: a B-tree keeps keys in order."])[0])


def test_the_job_graph_of_a_remote_run_builds_offline_with_the_staged_paths(s3_args, tmp_path):
    """Every DoFn of the job is serialised into the portable job graph, as the runner receives it; the graph
    names the staged models, never a path of the submitting machine."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    cfg = with_staged_models(_config(s3_args, tmp_path))
    job = curation_job(cfg, output=f"s3://{BUCKET}/out")
    p = beam.Pipeline(options=PipelineOptions(cfg.runner.beam_args))
    job.build(p, f"s3://{BUCKET}/out/.staging")
    from apache_beam.internal import pickler
    from apache_beam.portability.api import beam_runner_api_pb2

    graph = p.to_runner_api()
    dofns = []
    for transform in graph.components.transforms.values():
        if transform.spec.urn == "beam:transform:pardo:v1":
            payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
            if payload.do_fn.payload:
                dofns.append(pickler.loads(payload.do_fn.payload)[0])  # what a worker unpickles
    scored = [fn for fn in dofns if type(fn).__name__ == "_ScoreBatches"]
    assert {fn.handler.model_dir for fn in scored} == {cfg.classifiers[0].model_dir, "knowledge"}
    langid = [stage for fn in dofns for stage in getattr(fn, "stages", []) if stage.name == "langid"]
    assert [stage.cfg.model_path for stage in langid] == [cfg.langid.model_path]


def test_a_local_temp_location_stages_nothing(tmp_path):
    cfg = CurateConfig()
    cfg.runner = RunnerConfig("FlinkRunner", beam_args=[f"--temp_location={tmp_path}"])
    assert with_staged_models(cfg) is cfg  # workers share this disk: the paths stay


def test_filter_files_named_by_the_filter_registry_are_staged(s3_args, tmp_path, monkeypatch):
    """A filter argument its FILTERS entry names as a file (a word list) is uploaded like a model, and only then:
    the registry entry alone decides (no filter of the default profiles reads a file today)."""
    import dataclasses

    from assay.curation.filters import FILTERS

    words = tmp_path / "words.txt"
    words.write_text("release\nchangelog\n")
    monkeypatch.setitem(FILTERS, "release_notes", dataclasses.replace(FILTERS["release_notes"], files=("words",)))
    cfg = _config(s3_args, tmp_path)
    cfg.filters.params["release_notes"] = {"words": str(words)}
    staged = with_staged_models(cfg)
    assert staged.filters.params["release_notes"]["words"].startswith(f"s3://{BUCKET}/tmp/assay-models/")
    assert staged.filters.params["release_notes"]["words"].endswith("/words.txt")
    assert cfg.filters.params["release_notes"]["words"] == str(words)  # a copy
    cfg.stages.remove("filters")
    assert with_staged_models(cfg).filters.params["release_notes"]["words"] == str(words)  # filters do not run
