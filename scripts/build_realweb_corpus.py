"""Build the real-web corpus: pages from public repositories, rebuilt from local clones, rated by reading.

Why: the quality corpus (scripts/build_quality_corpus.py) is documentation, mail and fortunes. A crawl is news,
shops, blogs, forums and the odd textbook page. The filter has to be measured, and its classifiers trained, on
real web pages from many sites, each rated on the rubric in data/realweb/RUBRIC.md (FineWeb-Edu's additive
0-5 educational value, durable vs ephemeral, one category), split BY SOURCE so the eval split measures sources
nothing was trained or tuned on.

Nothing fetched is committed. This script reads local clones of the repositories below (each clone's commit is
recorded in the manifest), writes WARC files and a manifest.jsonl to an output folder outside git, and joins
the committed ratings (data/realweb/labels.jsonl, keyed by record id, with the sha256 of the page's bytes so a
changed rebuild is noticed). Pages without a rating keep their source's weak label (`weak_category`), recorded
as such.

  .venv/bin/python scripts/build_realweb_corpus.py --clones /path/to/clones --out ~/.cache/assay-realweb
      (--clones holds one folder per repository, named owner+name, each a git directory or a work tree)
  .venv/bin/python scripts/build_realweb_corpus.py ... --label-batches 8 --batch-dir out/label-batches
      (also writes the main text of the pages not rated yet as JSONL batches to rate)
  .venv/bin/python scripts/build_realweb_corpus.py --clones ... --merge-ratings RATINGS_DIR \
      --batch-dir out/label-batches
      (merges the raters' files into data/realweb/labels.jsonl and prints the blind re-rating agreement;
       with --add the committed labels are kept and the new files add pages to them)

Reserved for independent evaluation and refused here (the build stops if a source names one): the repositories
listed in RESERVED (extraction benchmarks, Wikipedia parsers, some OpenStax books and Gutenberg texts) and, in
the merged extraction-benchmark repository, its copy of Readability's test pages.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import html
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_quality_corpus as quality  # noqa: E402  (the refusal of reserved sources)
import build_sample as sample  # noqa: E402  (WARC writing and atomic writes)

REPO_ROOT = Path(__file__).resolve().parent.parent
LABELS = REPO_ROOT / "data" / "realweb" / "labels.jsonl"
RESERVED = (
    "scrapinghub/article-extraction-benchmark", "mozilla/readability", "adbar/trafilatura",
    "chatnoir-eu/web-content-extraction-benchmark", "spencermountain/wtf_wikipedia", "nikolaussucher/biology-text",
    "osbooks-psychology", "osbooks-principles-economics-bundle", "osbooks-physics", "osbooks-world-history",
    "osbooks-american-government", "osbooks-introduction-philosophy", "osbooks-astronomy",
    "osbooks-chemistry-bundle", "osbooks-microbiology", "osbooks-college-algebra-bundle",
    "_17474", "_16351", "_17074", "_19368", "_30621", "_41568", "readability/",
)


def refuse_reserved(names) -> None:
    quality.refuse_reserved(names, RESERVED)


@dataclass(frozen=True)
class Source:
    """One source of pages: a folder of a public repository, its licence, its split and its weak label."""

    name: str  # the manifest's source (one name per split unit)
    repo: str  # owner/name
    folder: str  # inside the repository
    kind: str  # how pages are read: html, cleaneval, bbc, cnxml, wikitext, usenet
    licence: str
    split: str  # train or eval: whole sources, never pages of one source in both
    weak_category: str | None  # the rubric category most of its pages have; None: mixed, rated pages only
    quota: int  # pages taken (a fixed pseudo-random choice)
    language: str = "en"
    commit: str | None = None  # read at this commit when the clone's HEAD no longer has the file
    truncated: bool = False  # the stored file was cut off: its last article is incomplete and left out


MERGED = "j-szulc/html-cleaning-dataset-merged"
SOURCES = [
    # ------------------------------------------------------------ train: classifiers and thresholds
    Source("cleaneval-final", MERGED, "cleaneval-final", "cleaneval", "CleanEval shared task data (research use)",
           "train", None, 741),
    Source("dragnet", MERGED, "dragnet_data", "cleaneval", "AGPL-3.0 (dragnet_data)", "train", None, 1382),
    Source("bbc-news", "dejanbatanjac/bbc-article-classify-bert", "bbc", "bbc",
           "BBC articles, research use (Greene & Cunningham 2006)", "train", "ephemeral", 150),
    Source("newspaper-fixtures", "codelucas/newspaper", "tests/data/html", "html", "MIT", "train", None, 157),
    Source("openstax-sociology", "openstax/osbooks-introduction-sociology", "modules", "cnxml", "CC-BY-NC-SA-4.0",
           "train", "explainer", 50),
    Source("openstax-us-history", "openstax/osbooks-us-history", "modules", "cnxml", "CC-BY-NC-SA-4.0", "train",
           "explainer", 50),
    Source("openstax-statistics", "openstax/osbooks-introductory-statistics-bundle", "modules", "cnxml",
           "CC-BY-NC-SA-4.0", "train", "explainer", 60),
    Source("openstax-prealgebra", "openstax/osbooks-prealgebra-bundle", "modules", "cnxml", "CC-BY-NC-SA-4.0",
           "train", "explainer", 60),
    Source("openstax-contemporary-math", "openstax/osbooks-contemporary-mathematics", "modules", "cnxml",
           "CC-BY-NC-SA-4.0", "train", "explainer", 60),
    Source("wikitext-2-valid", "pytorch/examples", "word_language_model/data/wikitext-2/valid.txt", "wikitext",
           "CC-BY-SA-3.0 (WikiText, Wikipedia)", "train", "explainer", 50),
    # the head of WikiText-103's train file (151 articles, cut at 2.5 MiB; a later commit removed it): Wikipedia's
    # good and featured articles, much of them games, songs, storms and battles (disjoint from WikiText's test split)
    Source("wikitext-103-train", "Hongcheng-Gao/RobTest-Demo", "data/wikitext-103/wiki.train.tokens", "wikitext",
           "CC-BY-SA-3.0 (WikiText, Wikipedia)", "train", None, 150,
           commit="37688d9e4800aa969050bd01f09033221aa5834e", truncated=True),
    Source("mini-newsgroups", "vaishnavivisweswaraiah/IR_TextMining", "mini_newsgroups", "usenet",
           "20 Newsgroups (research use)", "train", "forum", 150),
    # ------------------------------------------------------------ eval: held out, never trained or tuned on
    Source("l3s-gn1", MERGED, "page-signal-master", "cleaneval", "L3S-GN1 (research use)", "eval", None, 400),
    Source("cleaneval-dev", MERGED, "cleaneval-dev", "cleaneval", "CleanEval shared task data (research use)",
           "eval", None, 58),
    Source("cleanportaleval", MERGED, "CleanPortalEval-master", "cleaneval", "CleanPortalEval (no licence stated)",
           "eval", None, 71),
    Source("goose3-fixtures", "goose3/goose3", "tests/data/content", "html", "Apache-2.0", "eval", None, 51),
    Source("openstax-calculus", "openstax/osbooks-calculus-bundle", "modules", "cnxml", "CC-BY-NC-SA-4.0", "eval",
           "explainer", 70),
    Source("wikitext-2-test", "pytorch/examples", "word_language_model/data/wikitext-2/test.txt", "wikitext",
           "CC-BY-SA-3.0 (WikiText, Wikipedia)", "eval", "explainer", 50),
]


@dataclass
class RawPage:
    source: Source
    path: str  # inside the repository
    url: str
    body: bytes  # HTML, as stored in the WARC
    main_text: str  # what a rater reads: the benchmark's own main text where it has one, else extracted


def record_id(source: Source, path: str) -> str:
    return f"<urn:uuid:{hashlib.sha256(f'{source.repo}:{path}'.encode()).hexdigest()[:32]}>"


class Clone:
    """A local clone read through git (a bare mirror or a work tree), at its HEAD commit."""

    def __init__(self, root: Path, commit: str | None = None):
        self.root = root
        git_dir = root / "repo" if (root / "repo").is_dir() else root
        self.git = ["git", "--git-dir", str(git_dir / ".git" if (git_dir / ".git").exists() else git_dir)]
        self.commit = self._run("rev-parse", commit or "HEAD").decode().strip()

    def _run(self, *args: str) -> bytes:
        return subprocess.run(self.git + list(args), check=True, capture_output=True).stdout

    def files(self, folder: str) -> list[str]:
        out = self._run("ls-tree", "-r", "--name-only", self.commit, "--", folder).decode("utf-8", "surrogateescape")
        return [line for line in out.splitlines() if line]

    def read(self, path: str) -> bytes:
        return self._run("show", f"{self.commit}:{path}")


def stable_pick(items: list[str], count: int, salt: str) -> list[str]:
    return sorted(sorted(items, key=lambda p: hashlib.sha256(f"{salt}:{p}".encode()).hexdigest())[:count])


def decode(raw: bytes) -> str:
    charset = sample.html_charset(raw)
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def decode_text(raw: bytes) -> str:
    """A plain-text file: UTF-8 when it is, else Windows-1252 (the benchmarks' older gold files)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def simple_page(title: str, paragraphs: list[str]) -> bytes:
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p.strip())
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
            f"<body><article><h1>{html.escape(title)}</h1>\n{body}\n</article></body></html>\n").encode()


_CLEANEVAL_WRAPPER = re.compile(rb'^\s*<text id="([^"]*)"[^>]*>', re.S)


def read_cleaneval(clone: Clone, source: Source) -> list[RawPage]:
    """input/N.html plus GoldStandard/N.txt: the page, and the main text people marked on it."""
    from trafilatura import extract

    inputs = [p for p in clone.files(f"{source.folder}/input") if p.endswith((".html", ".htm"))]
    gold = {Path(p).stem: p for p in clone.files(f"{source.folder}/GoldStandard")}
    pages = []
    for path in stable_pick([p for p in inputs if Path(p).stem in gold], source.quota, source.name):
        raw = clone.read(path)
        url = f"https://{source.name}.realweb.invalid/{Path(path).name}"
        wrapper = _CLEANEVAL_WRAPPER.match(raw)
        if wrapper:  # CleanEval's <text id="URL"> wrapper is not part of the page
            url = wrapper.group(1).decode("utf-8", "replace") or url
            raw = raw[wrapper.end():].replace(b"</text>", b"")
        text = decode_text(clone.read(gold[Path(path).stem]))
        if re.search(r"<(html|style|body|div)\b", text[:2000], re.I):  # L3S-GN1's gold is marked-up HTML
            text = extract(decode(raw), include_comments=False) or ""
        text = re.sub(r"^\ufeff?\s*URL:.*\n", "", text)
        text = re.sub(r"<(p|h|l)>\s*", "\n", text)  # CleanEval's block marks
        pages.append(RawPage(source, path, url, raw, "\n".join(ln.strip() for ln in text.splitlines() if ln.strip())))
    return pages


def read_html(clone: Clone, source: Source) -> list[RawPage]:
    from trafilatura import extract

    files = [p for p in clone.files(source.folder) if p.endswith((".html", ".htm"))]
    pages = []
    for path in stable_pick(files, source.quota, source.name):
        raw = clone.read(path)
        markup = decode(raw)
        canonical = re.search(r'<link[^>]+rel=["\']canonical["\'][^>]+href=["\'](https?://[^"\']+)', markup)
        url = canonical.group(1) if canonical else f"https://{source.name}.realweb.invalid/{Path(path).name}"
        pages.append(RawPage(source, path, url, raw, extract(markup, include_comments=False) or ""))
    return pages


def read_bbc(clone: Clone, source: Source) -> list[RawPage]:
    files = [p for p in clone.files(source.folder) if re.search(r"/\d+\.txt$", p)]
    pages = []
    for path in stable_pick(files, source.quota, source.name):
        lines = [ln.strip() for ln in clone.read(path).decode("latin-1").splitlines()]
        title, paragraphs = lines[0], [ln for ln in lines[1:] if ln]
        section = path.split("/")[-2]
        url = f"https://bbc-news.realweb.invalid/{section}/{Path(path).stem}"
        pages.append(RawPage(source, path, url, simple_page(title, paragraphs), "\n".join([title] + paragraphs)))
    return pages


def read_usenet(clone: Clone, source: Source) -> list[RawPage]:
    files = [p for p in clone.files(source.folder) if re.search(r"/\d+$", p)]
    pages = []
    for path in stable_pick(files, source.quota, source.name):
        raw = clone.read(path).decode("latin-1")
        head, _, body = raw.partition("\n\n")
        subject = re.search(r"^Subject:\s*(.*)$", head, re.M)
        title = subject.group(1).strip() if subject else Path(path).name
        group = path.split("/")[-2]
        url = f"https://{group}.newsgroups.realweb.invalid/{Path(path).name}"
        markup = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
                  f"<body><h1>{html.escape(title)}</h1>\n<pre>{html.escape(body)}</pre></body></html>\n").encode()
        pages.append(RawPage(source, path, url, markup, f"{title}\n{body.strip()}"))
    return pages


_WIKI_TITLE = re.compile(r"^ = ([^=].*?) = $")
_WIKI_FIXES = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" , ", ", "), (" . ", ". "), (" ; ", "; "),
               (" : ", ": "), (" 's", "'s"), ("( ", "("), (" )", ")"), (" n't", "n't")]


def read_wikitext(clone: Clone, source: Source) -> list[RawPage]:
    """WikiText articles: ' = Title = ' starts an article, ' = = Section = = ' a section; detokenised."""
    articles: list[tuple[str, list[str]]] = []
    for line in clone.read(source.folder).decode("utf-8").splitlines():
        m = _WIKI_TITLE.match(line)
        if m:
            articles.append((m.group(1).strip(), []))
        elif articles and line.strip():
            text = line.strip()
            for a, b in _WIKI_FIXES:
                text = text.replace(a, b)
            articles[-1][1].append(text.strip(" ="))
    if source.truncated:
        articles = articles[:-1]
    by_title = {f"{source.folder}#{t}": (t, body) for t, body in articles}
    pages = []
    for key in stable_pick(list(by_title), source.quota, source.name):
        title, body = by_title[key]
        url = f"https://{source.name}.realweb.invalid/{title.replace(' ', '_')}"
        pages.append(RawPage(source, key, url, simple_page(title, body), "\n".join([title] + body)))
    return pages


_MATH_NS = "{http://www.w3.org/1998/Math/MathML}"


def _cnxml_text(el) -> str:
    """Inline CNXML text; MathML as the linear text a reader sees (x^2 + 1), links and terms as their words."""
    if not isinstance(el.tag, str):  # a comment or processing instruction: not text
        return ""
    if el.tag.startswith(_MATH_NS):
        return " ".join("".join(el.itertext()).split())
    parts = [el.text or ""]
    for child in el:
        parts.append(_cnxml_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def read_cnxml(clone: Clone, source: Source) -> list[RawPage]:
    """OpenStax modules (CNXML) as the HTML page the book's website shows: title, sections, paragraphs, lists."""
    from lxml import etree

    ns = "{http://cnx.rice.edu/cnxml}"
    files = [p for p in clone.files(source.folder) if p.endswith("index.cnxml")]
    pages = []
    for path in stable_pick(files, source.quota * 2, source.name):
        root = etree.fromstring(clone.read(path))
        title = " ".join("".join(root.findtext(f"{ns}title") or "").split())
        blocks, text = [], [title]
        for el in root.iter(f"{ns}title", f"{ns}para", f"{ns}item", f"{ns}caption"):
            if el.getparent() is root:
                continue
            words = " ".join(_cnxml_text(el).split())
            if not words:
                continue
            tag = {"title": "h2", "para": "p", "item": "li", "caption": "figcaption"}[el.tag[len(ns):]]
            blocks.append(f"<{tag}>{html.escape(words)}</{tag}>")
            text.append(words)
        if sum(len(t) for t in text) < 1500 or title.lower() in ("introduction", "key terms", "summary"):
            continue  # chapter openers and glossaries are not the book's teaching sections
        markup = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
                  f"<body><main><h1>{html.escape(title)}</h1>\n" + "\n".join(blocks) + "</main></body></html>\n")
        module = path.split("/")[-2]
        url = f"https://{source.name}.realweb.invalid/{module}"
        pages.append(RawPage(source, path, url, markup.encode(), "\n".join(text)))
        if len(pages) == source.quota:
            break
    return pages


READERS = {"cleaneval": read_cleaneval, "html": read_html, "bbc": read_bbc, "usenet": read_usenet,
           "wikitext": read_wikitext, "cnxml": read_cnxml}


def load_labels(path: Path = LABELS) -> dict[str, dict]:
    """record_id -> the committed rating (the first rater's; re-ratings carry `rerate: true`)."""
    if not path.is_file():
        return {}
    labels = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if not row.get("rerate"):
                labels[row["record_id"]] = row
    return labels


def build(clones: Path, out: Path, label_batches: int = 0, batch_dir: Path | None = None) -> dict:
    refuse_reserved([s.repo for s in SOURCES] + [s.folder for s in SOURCES])
    labels = load_labels()
    by_split: dict[str, list[tuple[RawPage, str]]] = {"train": [], "eval": []}
    for source in SOURCES:
        clone_dir = clones / source.repo.replace("/", "+")
        if not clone_dir.exists():
            raise FileNotFoundError(f"{clone_dir}: no clone of {source.repo}; fetch it first (see the docstring)")
        clone = Clone(clone_dir, source.commit)
        pages = READERS[source.kind](clone, source)
        binary = [p for p in pages if b"\x00" in p.body]
        if binary:  # `assay run` quarantines such records as binary_content: nothing for the text filters to judge
            print(f"{source.name}: left out {len(binary)} page(s) with NUL bytes: {[p.path for p in binary]}",
                  file=sys.stderr)
            pages = [p for p in pages if b"\x00" not in p.body]
        print(f"{source.name}: {len(pages)} pages from {source.repo}@{clone.commit[:12]}", file=sys.stderr)
        by_split[source.split] += [(page, clone.commit) for page in pages]
    summary = {}
    for split, pages in by_split.items():
        rows, warc_pages = [], []
        for page, commit in pages:
            rid = record_id(page.source, page.path)
            digest = hashlib.sha256(page.body).hexdigest()
            label = labels.get(rid)
            if label and label.get("sha256") != digest:
                raise RuntimeError(f"{rid} ({page.source.name}:{page.path}): the page's bytes changed since it was "
                                   "rated; rate it again or build from the recorded commit")
            row = {"record_id": rid, "url": page.url, "source_package": page.source.name,
                   "repo": page.source.repo, "commit": commit, "source_path": page.path,
                   "licence": page.source.licence, "split": split, "language": page.source.language,
                   "sha256": digest, "bytes": len(page.body), "weak_category": page.source.weak_category}
            if label:
                row.update(edu_score=label["edu"], durable=label["durable"], category=label["category"],
                           rated_by=label["rater"])
            else:
                row.update(edu_score=None, durable=None, category=page.source.weak_category or "unrated",
                           rated_by=None)
            rows.append(row)
            warc_pages.append(sample.Page(url=page.url, category=row["category"], source_package=page.source.name,
                                          licence=page.source.licence, language="en", body=page.body,
                                          charset="utf-8", source_path=page.path))
        write_split(out / split, warc_pages, rows)
        summary[split] = {"pages": len(rows), "rated": sum(r["edu_score"] is not None for r in rows)}
        if label_batches and batch_dir is not None:  # the pages still to rate
            write_batches(batch_dir, split, [pc for pc in pages if record_id(pc[0].source, pc[0].path) not in labels],
                          label_batches)
    print(json.dumps(summary), file=sys.stderr)
    return summary


def write_split(folder: Path, pages: list, rows: list[dict]) -> None:
    """WARC records carry the rows' record ids (so committed labels join), 300 pages a file."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder.mkdir(parents=True, exist_ok=True)
    first = dt.datetime(2026, 12, 7)
    manifest = []
    for n in range(0, len(pages), 300):
        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=True)
        name = f"realweb-{n // 300:05d}.warc.gz"
        for i, (page, row) in enumerate(zip(pages[n:n + 300], rows[n:n + 300])):
            http_headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html"),
                                                       ("Content-Length", str(len(page.body)))],
                                            protocol="HTTP/1.1")
            date = (first + dt.timedelta(seconds=7 * (n + i))).strftime("%Y-%m-%dT%H:%M:%SZ")
            record = writer.create_warc_record(page.url, "response", payload=io.BytesIO(page.body),
                                               length=len(page.body), http_headers=http_headers,
                                               warc_headers_dict={"WARC-Record-ID": row["record_id"],
                                                                  "WARC-Date": date})
            writer.write_record(record)
            manifest.append({**row, "warc_file": name})
        sample.atomic_write(folder / name, buffer.getvalue())
    sample.atomic_write(folder / "manifest.jsonl",
                        "".join(json.dumps(r, sort_keys=True) + "\n" for r in manifest).encode())


def write_batches(batch_dir: Path, split: str, pages, count: int, max_chars: int = 2000) -> None:
    """The pages' main text, as a rater reads it, in `count` JSONL files per split (sources interleaved)."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    order = sorted(pages, key=lambda pc: hashlib.sha256(record_id(pc[0].source, pc[0].path).encode()).hexdigest())
    for k in range(count):
        rows = [{"record_id": record_id(p.source, p.path), "source": p.source.name, "url": p.url,
                 "sha256": hashlib.sha256(p.body).hexdigest(), "text": p.main_text[:max_chars],
                 "truncated": len(p.main_text) > max_chars}
                for p, _ in order[k::count]]
        with gzip.open(batch_dir / f"{split}-{k}.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


CATEGORIES = ("explainer", "ephemeral", "opinion", "commercial", "forum", "fiction", "spam", "navigation", "other",
              "non_english")


def merge_ratings(ratings_dir: Path, batch_dirs: list[Path], out: Path = LABELS, add: bool = False) -> dict:
    """Raters' files (one JSON line per page read) -> data/realweb/labels.jsonl, checked, with each page's sha256
    from the batch it was read in; returns the blind re-rating agreement (exact and within one point).

    With `add`, the ratings already in `out` stay and the files rate new pages only (a later labelling round)."""
    digests = {}
    for batch in sorted(b for d in batch_dirs for b in d.glob("*.jsonl.gz")):
        with gzip.open(batch, "rt", encoding="utf-8") as fh:
            digests.update((r["record_id"], r["sha256"]) for r in map(json.loads, fh))
    first: dict[str, dict] = {}
    again: dict[str, dict] = {}
    if add and out.is_file():
        for row in map(json.loads, filter(str.strip, out.read_text().splitlines())):
            (again if row["rerate"] else first)[row["record_id"]] = row
    for path in sorted(ratings_dir.glob("*.jsonl")):
        # a rater corrects a line by appending a new one for the same page: within a file the last line counts
        mine: dict[tuple[str, bool], dict] = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            where = f"{path}:{n}"
            if row["record_id"] not in digests:
                raise ValueError(f"{where}: {row['record_id']} is no page of the batches")
            if row["edu"] not in range(6) or row["durable"] not in ("durable", "ephemeral") \
                    or row["category"] not in CATEGORIES:
                raise ValueError(f"{where}: edu must be 0-5, durable durable|ephemeral, category one of {CATEGORIES}")
            mine[(row["record_id"], bool(row.get("rerate")))] = {
                "record_id": row["record_id"], "sha256": digests[row["record_id"]], "edu": int(row["edu"]),
                "durable": row["durable"], "category": row["category"], "note": row.get("note", ""),
                "rater": row["rater"], "rubric": "data/realweb/RUBRIC.md (v1)", "rerate": bool(row.get("rerate"))}
        for (rid, rerate), rating in mine.items():
            target = again if rerate else first
            if rid in target:
                raise ValueError(f"{path}: {rid} was rated in another file of the same pass too "
                                 f"(or is in {out.name} already)")
            target[rid] = rating
    missing = sorted(set(digests) - set(first))
    if missing:
        print(f"{len(missing)} pages of the batches have no rating yet (e.g. {missing[:3]})", file=sys.stderr)
    rows = [first[k] for k in sorted(first)] + [again[k] for k in sorted(again)]
    sample.atomic_write(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    pairs = [(first[k], again[k]) for k in sorted(again) if k in first]
    agreement = {
        "pairs": len(pairs),
        "edu_exact": round(sum(a["edu"] == b["edu"] for a, b in pairs) / max(len(pairs), 1), 3),
        "edu_within_one": round(sum(abs(a["edu"] - b["edu"]) <= 1 for a, b in pairs) / max(len(pairs), 1), 3),
        "edu_ge3_same_side": round(sum((a["edu"] >= 3) == (b["edu"] >= 3) for a, b in pairs) / max(len(pairs), 1), 3),
        "durable_same": round(sum(a["durable"] == b["durable"] for a, b in pairs) / max(len(pairs), 1), 3),
        "category_same": round(sum(a["category"] == b["category"] for a, b in pairs) / max(len(pairs), 1), 3),
    }
    print(json.dumps({"rated": len(first), "re_rated": len(again), "agreement": agreement}), file=sys.stderr)
    return agreement


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clones", type=Path, required=True, help="folder of clones named owner+name")
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "assay-realweb")
    parser.add_argument("--label-batches", type=int, default=0)
    parser.add_argument("--batch-dir", type=Path, action="append",
                        help="where batches to rate are written (with --label-batches) or were read (with "
                             "--merge-ratings; repeatable)")
    parser.add_argument("--merge-ratings", type=Path, metavar="DIR",
                        help="first merge the raters' files in DIR into data/realweb/labels.jsonl (needs --batch-dir)")
    parser.add_argument("--add", action="store_true",
                        help="with --merge-ratings: keep the committed labels; DIR's files rate new pages only")
    args = parser.parse_args(argv)
    if args.merge_ratings:
        merge_ratings(args.merge_ratings, args.batch_dir, add=args.add)
        return
    build(args.clones, args.out, args.label_batches, (args.batch_dir or [None])[0])


if __name__ == "__main__":
    main()
