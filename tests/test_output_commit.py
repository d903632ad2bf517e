"""One output, one commit: a lock on the output folder, a staging folder per run, one atomic switch of
`current`, run.json (with the shards' checksums) written before the switch and checked by every reader, and
clear one-paragraph errors for a damaged output. Real Beam runs on a few pages, real processes killed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.curation.shards import CURRENT, RUNS_DIR, checked_run, clean_leftovers, publish_run, published_run
from assay.groundwork.atomic import OutputBusy, output_lock
from assay.pipelines.cli import app
from assay.pipelines.curate.config import CurateConfig
from assay.pipelines.curate.job import run_curation

WORDS = ("indexes let a database find rows without reading the whole table and every lookup touches only few "
         "pages of the tree which keeps keys in order so that range queries are cheap while writes must update "
         "each index with care because the planner chooses plans from statistics about how values spread over "
         "columns in large tables where scans would take minutes instead of milliseconds for users").split()


def prose(seed: int, sentences: int = 14) -> str:
    import random

    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))).capitalize() + "."
                    for _ in range(sentences))


def pages_jsonl(path: Path, n: int, tag: str = "") -> None:
    lines = []
    for i in range(n):
        text = prose(hash((tag, i)) % 10_000) if i % 3 else f"short {tag}{i}"
        lines.append(json.dumps({"id": f"{tag}p{i}", "text": text, "url": f"https://ex.example/{tag}{i}"}))
    path.write_text("\n".join(lines) + "\n")


def config(inputs: list[str], out: str) -> CurateConfig:
    cfg = CurateConfig()
    cfg.input.paths = inputs
    cfg.output.path = out
    cfg.output.histograms = False
    cfg.stages = ["langid", "filters"]  # JSONL text: no extraction; no models but lid.176
    cfg.runner.workers, cfg.runner.mode, cfg.runner.progress = 1, "in_memory", False
    return cfg


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A real run's output folder, and the run's result."""
    root = tmp_path_factory.mktemp("commit")
    pages_jsonl(root / "a.jsonl", 9)
    out = root / "out"
    return out, run_curation(config([str(root / "a.jsonl")], str(out)))


def copy_output(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def invoke(*args):
    return CliRunner().invoke(app, list(args), terminal_width=200)


def test_a_run_publishes_one_run_folder_behind_current(finished):
    out, result = finished
    run = os.readlink(out / CURRENT)
    assert run.startswith(RUNS_DIR + "/") and sorted(os.listdir(out / RUNS_DIR)) == [run.split("/", 1)[1]]
    for name in ("docs", "rejected", "stats", "run.json"):  # the documented paths keep working
        assert os.readlink(out / name) == f"{CURRENT}/{name}" and (out / name).exists()
    assert not (out / ".staging").exists()
    record = json.loads((out / "run.json").read_text())
    assert record["run_id"] == run.split("/", 1)[1]
    assert set(record["files"]) == {f"docs/{p.name}" for p in (out / "docs").iterdir()} | {
        f"rejected/{p.name}" for p in (out / "rejected").iterdir()}
    assert record["counts"] == {"kept": result.counts["kept"], "rejected": result.counts["rejected"]}
    assert 0 < result.counts["kept"] < 9
    folder, checked = checked_run(str(out))
    assert folder == str((out / run).resolve()) and checked == record


def test_a_second_run_into_a_held_folder_refuses_naming_the_holder(finished, tmp_path):
    out, _ = finished
    out = copy_output(out, tmp_path / "out")
    before = sorted(os.listdir(out / "docs"))
    hold = ("import sys, time; from assay.groundwork.atomic import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusy, match=rf"pid {holder.pid}\b.*nothing was written"):
            run_curation(config([str(tmp_path / "none.jsonl")], str(out)))
        result = invoke("run", "--output", str(out), "--no-progress")  # the CLI: one paragraph, exit 2
        assert result.exit_code == 2 and f"pid {holder.pid}" in result.output and "Traceback" not in result.output
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert sorted(os.listdir(out / "docs")) == before and not (out / ".staging").exists()
    notes = []
    with output_lock(str(out), say=notes.append):  # the holder died by SIGKILL: its lock is taken over
        pass
    assert len(notes) == 1 and f"pid {holder.pid}" in notes[0] and "took over" in notes[0]
    with output_lock(str(out), say=notes.append):  # released cleanly: no message
        pass
    assert len(notes) == 1


def test_two_runs_racing_into_one_folder_lose_nothing(tmp_path):
    """The first run holds the lock while it works; the second refuses; the first publishes all of its records."""
    pages_jsonl(tmp_path / "a.jsonl", 30)
    out = tmp_path / "out"
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text(f'stages = ["langid", "filters"]\n[input]\npaths = ["{tmp_path / "a.jsonl"}"]\n'
                        '[output]\nhistograms = false\n[runner]\nworkers = 1\nmode = "in_memory"\nprogress = false\n')
    first = subprocess.Popen([sys.executable, "-m", "assay.pipelines.cli", "run", str(cfg_file), "-o", str(out)],
                             cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / ".staging").is_dir() and any((out / ".staging").iterdir())):
        time.sleep(0.1)
    with pytest.raises(OutputBusy, match=rf"pid {first.pid}\b"):
        run_curation(config([str(tmp_path / "a.jsonl")], str(out)))
    assert first.wait(180) == 0, first.stderr.read()
    record = json.loads((out / "run.json").read_text())
    assert record["counts"]["kept"] + record["counts"]["rejected"] == 30
    checked_run(str(out))  # every shard as recorded


def test_a_kill_at_any_step_of_publishing_leaves_one_whole_output(finished, tmp_path):
    """publish_run's steps one by one, as a kill between them would leave them: readers see the old run until
    `current` switches, then the new one; the next run removes what a killed one left, saying so."""
    out, _ = finished
    out = copy_output(out, tmp_path / "out")
    old_run = published_run(str(out))
    old_kept = json.loads((out / "run.json").read_text())["counts"]["kept"]
    staged = out / ".staging" / "r2"
    staged.parent.mkdir()
    subprocess.run(["cp", "-a", old_run, str(staged)], check=True)
    record = json.loads((staged / "run.json").read_text())
    record["counts"]["kept"] = -1  # a marker: which run a reader sees
    (staged / "run.json").write_text(json.dumps(record))
    # killed after staging: readers see the old run; the next start removes the staging
    assert checked_run(str(out))[1]["counts"]["kept"] == old_kept
    notes = []
    clean_leftovers(str(out), notes.append)
    assert not staged.exists() and any("r2" in n and "did not finish" in n for n in notes)
    # killed after the move to runs/ but before the switch: still the old run; the orphan is removed next time
    subprocess.run(["cp", "-a", old_run, str(out / RUNS_DIR / "r3")], check=True)
    assert checked_run(str(out))[1]["counts"]["kept"] == old_kept
    clean_leftovers(str(out), notes.append)
    assert not (out / RUNS_DIR / "r3").exists() and any("r3" in n for n in notes)
    # the switch itself: one rename; afterwards the new run, whole, and the old run is gone
    os.makedirs(staged.parent, exist_ok=True)
    subprocess.run(["cp", "-a", old_run, str(staged)], check=True)
    (staged / "run.json").write_text(json.dumps(record))
    publish_run(str(staged), str(out), "r4")
    assert checked_run(str(out), verify=False)[1]["counts"]["kept"] == -1
    assert sorted(os.listdir(out / RUNS_DIR)) == ["r4"] and not os.path.exists(old_run)


def test_an_output_of_the_older_layout_is_replaced_by_a_run(tmp_path):
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "part-00000-of-00001.parquet").write_bytes(b"old")
    (out / "run.json").write_text(json.dumps({"job": "curate", "versions": {}, "counts": {"kept": 1}}))
    pages_jsonl(tmp_path / "a.jsonl", 6)
    result = run_curation(config([str(tmp_path / "a.jsonl")], str(out)))
    assert os.path.islink(out / "docs") and os.path.islink(out / "run.json")
    assert json.loads((out / "run.json").read_text())["counts"] == result.counts
    checked_run(str(out))


def test_a_changed_shard_is_named_by_stats_and_sql(finished, tmp_path):
    out = copy_output(finished[0], tmp_path / "out")
    shard = sorted((out / "docs").iterdir())[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, other checksum
    shard.write_bytes(bytes(data))
    for args in (("stats", str(out)), ("sql", "SELECT count(*) FROM docs", "-o", str(out))):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert shard.name in result.output and "changed since the run wrote it" in result.output
        assert "Traceback" not in result.output
    assert invoke("stats", str(out), "--no-verify").exit_code == 0
    shard.unlink()
    result = invoke("stats", str(out))
    assert result.exit_code == 2 and "missing" in result.output and shard.name in result.output


@pytest.mark.parametrize("name", ["run.json", "stats/funnel.json"])
def test_a_truncated_record_gets_one_paragraph(finished, tmp_path, name):
    out = copy_output(finished[0], tmp_path / "out")
    path = Path(published_run(str(out))) / name
    path.write_text(path.read_text()[:40])
    for args in (("stats", str(out)), ("sql", "SELECT count(*) FROM docs", "-o", str(out))):
        result = invoke(*args)
        if name.startswith("stats/") and args[0] == "sql":  # the shards are fine: queries run, with a warning
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 2, result.output
        assert "cut short" in result.output and "run the job again" in result.output
        assert "Traceback" not in result.output and "JSONDecodeError" not in result.output


def test_a_missing_ledger_is_an_empty_view_not_a_duckdb_hint(finished, tmp_path):
    out = copy_output(finished[0], tmp_path / "out")
    run = Path(published_run(str(out)))
    subprocess.run(["rm", "-r", str(run / "rejected")], check=True)
    result = invoke("sql", "SELECT count(*) AS n FROM rejected", "-o", str(out), "--no-verify", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert "n\n0" in result.output and "Did you mean" not in result.output
    result = invoke("sql", "SELECT count(*) FROM rejected", "-o", str(out))
    assert result.exit_code == 2 and "missing" in result.output and "rejected/" in result.output


def test_the_ledger_keeps_an_excerpt_unless_asked_for_the_text(tmp_path):
    from assay.curation.document import LEDGER_EXCERPT_CHARS
    from assay.pipelines.job.sql import run_query

    repeated = "The same line again and again on this page.\n" * 60  # dropped for repetition
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "rep", "text": repeated}) + "\n"
                                      + json.dumps({"id": "ok", "text": prose(3)}) + "\n")
    query = "SELECT id, text, text_chars FROM rejected"
    cfg = config([str(tmp_path / "a.jsonl")], str(tmp_path / "excerpt"))
    run_curation(cfg)
    _, rows = run_query(str(tmp_path / "excerpt"), query)
    assert rows == [("rep", repeated[:LEDGER_EXCERPT_CHARS], len(repeated))]
    cfg.output.ledger_full_text = True
    run_curation(cfg, output=str(tmp_path / "full"))
    _, rows = run_query(str(tmp_path / "full"), query)
    assert rows == [("rep", repeated, len(repeated))]
    shown = invoke("run", "--ledger-full-text", "--show-config")  # the CLI flag sets the config's setting
    assert shown.exit_code == 0 and json.loads(shown.output)["output"]["ledger_full_text"] is True
    assert json.loads(invoke("run", "--show-config").output)["output"]["ledger_full_text"] is False


def test_a_rerun_replaces_the_previous_run_whole(finished, tmp_path):
    out = copy_output(finished[0], tmp_path / "out")
    old_run = published_run(str(out))
    pages_jsonl(tmp_path / "b.jsonl", 5, tag="b")
    result = run_curation(config([str(tmp_path / "b.jsonl")], str(out)))
    new_run = published_run(str(out))
    assert new_run != old_run and not os.path.exists(old_run) and os.listdir(out / RUNS_DIR) == [Path(new_run).name]
    record = checked_run(str(out))[1]
    assert record["counts"] == result.counts and result.counts["kept"] + result.counts["rejected"] == 5


def test_a_rerun_after_sigkill_reuses_the_finished_units_and_gives_identical_output(tmp_path, capfd):
    """Small files are one work unit each, the large ones several byte ranges (reader.unit_bytes); the run is
    SIGKILLed once some units are saved, and the rerun reads only the others."""
    from assay.curation.readers import ReaderConfig
    from assay.pipelines.job.resume import unit_key
    from assay.pipelines.job.sources import plan_file

    files = []
    for i, n in enumerate((10, 700, 10, 700)):  # small and large input files: the run is killed part-way
        pages_jsonl(tmp_path / f"in{i}.jsonl", n, tag=f"f{i}")
        files.append(str(tmp_path / f"in{i}.jsonl"))
    unit_bytes = os.path.getsize(files[1]) // 4
    units = [u for f in files for u in plan_file(f, ReaderConfig(unit_bytes=unit_bytes))]
    ranges = {unit_key(u) + ".unit" for u in units if not u.whole}
    assert len(units) >= 8 and len(ranges) >= 6
    cfg = config(files, str(tmp_path / "reference"))
    cfg.input.reader.unit_bytes = unit_bytes
    reference = run_curation(cfg)
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text(f'stages = ["langid", "filters"]\n[input]\npaths = {json.dumps(files)}\n'
                        f'[input.reader]\nunit_bytes = {unit_bytes}\n[output]\nhistograms = false\n'
                        '[runner]\nworkers = 1\nmode = "in_memory"\nprogress = false\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "assay.pipelines.cli", "run", str(cfg_file), "-o", str(out)],
                            cwd=Path(__file__).parents[1], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not ranges & {p.name for p in out.glob(".resume/*/*.unit")}:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = {p.name for p in out.glob(".resume/*/*.unit")}
    assert ranges & saved and len(saved) < len(units) and not (out / "docs").exists()  # a range of a file saved
    capfd.readouterr()
    cfg.output.path = str(out)
    result = run_curation(cfg)
    assert (f"resuming: {len(saved)} work unit(s) (input files or ranges of one) finished by an interrupted run"
            in capfd.readouterr().err)
    for sub in ("docs", "rejected"):
        assert {p.name: p.read_bytes() for p in (out / sub).iterdir()} == {
            p.name: p.read_bytes() for p in (tmp_path / "reference" / sub).iterdir()}
    assert {**result.funnel, "seconds": 0} == {**reference.funnel, "seconds": 0}
    assert not (out / ".resume").exists()


def test_a_planted_resume_unit_cannot_run_code(tmp_path):
    import pickle

    import zstandard

    from assay.curation.document import Document
    from assay.pipelines.job.resume import unit_is_whole

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    good = tmp_path / "good.unit"
    good.write_bytes(zstandard.ZstdCompressor().compress(
        pickle.dumps((False, Document(id="a", text="t"))) + pickle.dumps(("counters", {"read|docs_in": 1}))))
    assert unit_is_whole(str(good))
    planted = tmp_path / "planted.unit"
    planted.write_bytes(zstandard.ZstdCompressor().compress(pickle.dumps((False, Planted()))))
    assert not unit_is_whole(str(planted)) and not (tmp_path / "ran").exists()  # refused, so read again
