"""Build the corpus of the proof ablation (plans/ablate_proof.toml): >= 20M tokens of real pages, and neutral
reference text kept out of every pool, from what is reachable offline.

Why: a data decision needs enough real text that filtering can matter (pages a crawler would see: manuals,
generated API indexes, translated pages, news, forums, textbooks, spam, mail, fortunes), and an evaluation
that no filter ever judged. Nothing here is committed; everything is rebuilt from local copies whose versions
are recorded in build.json.

Pools (WARC files under OUT/pages, read by `assay run`):
- docs-*: every HTML page (<= 300 kB, a crawler's page limit) of the Debian documentation packages in the quality
  corpus's cache (registry documentation: manuals, references, API pages, indexes, translations), except
  reserved sources;
- web-*: the real-web corpus's TRAIN sources (scripts/build_realweb_corpus.py readers over local clones), every
  page of each source instead of its labelling quota, WikiText left out (its test split is reference text);
- the quality corpus's train split (scripts/build_quality_corpus.py: docs, nav pages, changelogs, spam, ham
  mail, chatter, duplicates), built into OUT/quality unless --no-quality.
Neutral reference text (OUT/reference, one .txt per document, for `[eval.sets.NAME] text = ...`):
- wiki: the WikiText-2 test articles (Wikipedia);
- textbook: the sections of OpenStax Calculus (a book no pool reads; the real-web corpus uses it only as an
  eval source, and this script never reads the real-web eval sources into a pool).
The ablation checks by content hash that no pool holds a reference document (assay/pipelines/ablate/evalsets.py).

Run:  .venv/bin/python scripts/build_ablate_proof_corpus.py --clones /work/.mirror --out out/proof/corpus
      (--max-pages N caps pages per source for a quick smoke run; --no-quality skips the quality corpus build)
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_quality_corpus as quality  # noqa: E402  (the doc cache, reserved-source refusal)
import build_realweb_corpus as realweb  # noqa: E402  (readers of the public repositories)
import build_sample as sample  # noqa: E402  (WARC writing, charset sniffing, atomic writes)

MAX_PAGE_BYTES = 300_000
PAGES_PER_FILE = 500
NOT_PAGES = ("spam-assassin", "fortunes")  # mail and fortune files, not HTML pages (the quality build renders them)
NEUTRAL = {"wiki": "wikitext-2-test", "textbook": "openstax-calculus"}
WEB_LEFT_OUT = ("wikitext-2-valid",)  # the same source as the wiki reference text
ALL_PAGES = 100_000  # a quota above every real-web source's size: every page


def doc_pages(x: Path, max_pages: int) -> dict[str, list[sample.Page]]:
    """{package: its HTML pages} of every unpacked documentation package, in a stable order."""
    packages = sorted(p.name for p in x.iterdir() if p.is_dir() and not p.name.startswith(NOT_PAGES))
    quality.refuse_reserved(packages)
    out = {}
    for package in packages:
        root = x / package
        files = sorted(p for p in root.rglob("*") if p.suffix in (".html", ".htm") and p.is_file())
        pages = []
        for path in sample.stable_order(files, key=str):
            body = path.read_bytes()
            if not body.strip() or len(body) > MAX_PAGE_BYTES or b"\x00" in body:
                continue
            rel = str(path.relative_to(root))
            pages.append(sample.Page(url=f"https://{package}.docs.invalid/{quote(rel)}", category="doc",
                                     source_package=package, licence="see the package's copyright file",
                                     language="", body=body, charset=sample.html_charset(body), source_path=rel))
            if max_pages and len(pages) >= max_pages:
                break
        out[package] = pages
    return out


def web_pages(clones: Path, max_pages: int) -> tuple[dict[str, list[sample.Page]], dict[str, str]]:
    """({source: pages}, {repo: commit}) of the real-web corpus's train sources, every page of each."""
    sources = [s for s in realweb.SOURCES if s.split == "train" and s.name not in WEB_LEFT_OUT]
    realweb.refuse_reserved([s.repo for s in sources] + [s.folder for s in sources])
    out, commits = {}, {}
    for source in sources:
        clone = realweb.Clone(clones / source.repo.replace("/", "+"))
        commits[source.repo] = clone.commit
        raw = realweb.READERS[source.kind](clone, dataclasses.replace(source, quota=max_pages or ALL_PAGES))
        out[source.name] = [sample.Page(url=p.url, category=source.weak_category or "web",
                                        source_package=source.name, licence=source.licence, language="en",
                                        body=p.body, charset="utf-8" if source.kind in ("cnxml", "bbc", "usenet")
                                        else sample.html_charset(p.body), source_path=p.path)
                            for p in raw if b"\x00" not in p.body]
        print(f"web {source.name}: {len(out[source.name])} pages", file=sys.stderr)
    return out, commits


def reference_texts(clones: Path, out: Path, max_docs: int) -> tuple[dict[str, int], dict[str, str]]:
    """Write OUT/reference/<set>/<n>.txt; ({set: documents}, {repo: commit})."""
    by_name = {s.name: s for s in realweb.SOURCES}
    counts, commits = {}, {}
    for name, source_name in NEUTRAL.items():
        source = by_name[source_name]
        realweb.refuse_reserved([source.repo, source.folder])
        clone = realweb.Clone(clones / source.repo.replace("/", "+"))
        commits[source.repo] = clone.commit
        pages = realweb.READERS[source.kind](clone, dataclasses.replace(source, quota=max_docs or ALL_PAGES))
        folder = out / "reference" / name
        n = 0
        for page in sorted(pages, key=lambda p: p.path):
            if len(page.main_text) < 500:
                continue
            sample.atomic_write(folder / f"{n:04d}.txt", page.main_text.encode("utf-8"))
            n += 1
        counts[name] = n
        print(f"reference {name}: {n} documents from {source.repo}", file=sys.stderr)
    return counts, commits


def write_warcs(folder: Path, prefix: str, pages: list[sample.Page]) -> int:
    urls = set()
    unique = [p for p in pages if not (p.url in urls or urls.add(p.url))]
    first = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    for n in range(0, len(unique), PAGES_PER_FILE):
        chunk = unique[n:n + PAGES_PER_FILE]
        sample.atomic_write(folder / f"{prefix}-{n // PAGES_PER_FILE:05d}.warc.gz", sample.warc_bytes(chunk, first))
    return len(unique)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clones", type=Path, required=True, help="folder of clones named owner+name")
    parser.add_argument("--cache", type=Path, default=quality.CorpusConfig.cache_dir,
                        help="the quality corpus's package cache (unpacked packages in CACHE/x)")
    parser.add_argument("--out", type=Path, default=Path("out/proof/corpus"))
    parser.add_argument("--max-pages", type=int, default=0, help="pages per source (0 = all): a smoke-test corpus")
    parser.add_argument("--no-quality", action="store_true", help="leave the quality corpus's train split out")
    args = parser.parse_args(argv)
    x = sample.unpack(sample.SampleConfig(cache_dir=args.cache))
    pages_dir = args.out / "pages"
    counts: dict[str, int] = {}
    for package, pages in doc_pages(x, args.max_pages).items():
        counts[f"docs:{package}"] = write_warcs(pages_dir, f"docs-{package}", pages)
    web, commits = web_pages(args.clones, args.max_pages)
    for name, pages in web.items():
        counts[f"web:{name}"] = write_warcs(pages_dir, f"web-{name}", pages)
    inputs = [str(pages_dir)]
    if not args.no_quality:
        quality.main(["--split", "train", "--cache", str(args.cache), "--out", str(args.out / "quality")])
        inputs.append(str(args.out / "quality" / "train" / "*.warc.gz"))  # not its manifest.jsonl
    reference, ref_commits = reference_texts(args.clones, args.out, args.max_pages)
    record = {"built_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "max_pages": args.max_pages, "quality": not args.no_quality, "inputs": inputs,
              "pages": counts, "html_bytes": sum(p.stat().st_size for p in pages_dir.glob("*.warc.gz")),
              "reference": reference, "commits": {**commits, **ref_commits}, "doc_cache": str(x)}
    sample.atomic_write(args.out / "build.json", (json.dumps(record, indent=1) + "\n").encode())
    print(json.dumps({k: record[k] for k in ("inputs", "reference", "html_bytes")}), file=sys.stderr)
    print(f"{sum(counts.values())} pages in {len(counts)} sources", file=sys.stderr)


if __name__ == "__main__":
    main()
