"""A received or cut-short fastText model gives a clear error before fastText opens it (fastText itself would
read a cut dictionary forever, growing memory without bound)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assay.curation.fasttext_file import FastTextFileError, check_fasttext_file
from assay.curation.langid import bundled_lid_model

ROOT = Path(__file__).resolve().parents[1]
EDU = ROOT / "assay" / "classifiers" / "shipped_models" / "edu-fasttext"


def test_complete_models_pass_and_every_cut_is_named(tmp_path):
    check_fasttext_file(str(EDU / "model.bin"))  # dense matrices
    check_fasttext_file(bundled_lid_model())  # quantized
    data = (EDU / "model.bin").read_bytes()
    cut = tmp_path / "model.bin"
    for size, where in [(0, "the header"), (40, "training arguments"), (2000, "dictionary entry"),
                        (len(data) // 2, "input matrix"), (len(data) - 1, "output matrix")]:
        cut.write_bytes(data[:size])
        with pytest.raises(FastTextFileError, match=rf"model\.bin: not a complete fastText model \(.*{where}.*"
                                                    r"download or copy it again, or retrain"):
            check_fasttext_file(str(cut))
    cut.write_bytes(b"<html>not found</html>" * 10)
    with pytest.raises(FastTextFileError, match="no fastText magic number"):
        check_fasttext_file(str(cut))


def test_a_cut_model_folder_and_language_model_fail_fast_instead_of_hanging(tmp_path):
    """In a child process with a memory cap and a timeout: without the check, fastText would never return."""
    folder = tmp_path / "edu"
    shutil.copytree(EDU, folder)
    (folder / "model.bin").write_bytes((EDU / "model.bin").read_bytes()[:2000])
    from assay.classifiers.artifact import files_hash

    meta = json.loads((folder / "metadata.json").read_text())  # a crafted folder: its hash matches the cut file
    meta["content_hash"] = files_hash(str(folder), meta["files"])
    (folder / "metadata.json").write_text(json.dumps(meta))
    lid = tmp_path / "lid.176.ftz"
    lid.write_bytes(Path(bundled_lid_model()).read_bytes()[:5000])
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from assay.classifiers.artifact import load_model
        from assay.curation.langid import LanguageIdentifier
        for load in (lambda: load_model({str(folder)!r}), lambda: LanguageIdentifier({str(lid)!r})):
            try:
                load()
                print("LOADED")
            except ValueError as exc:
                print("REFUSED", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 2, out.stdout + out.stderr
    assert lines[0].startswith("REFUSED") and "model.bin: not a complete fastText model" in lines[0]
    assert lines[1].startswith("REFUSED") and "lid.176.ftz: not a complete fastText model" in lines[1]
