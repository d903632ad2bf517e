"""`assay synth ...`: synthetic data (textbooks, verified exercises, rephrasing), rubric annotation,
decontamination, coverage reports, and an OpenAI-compatible server for a local model."""
from __future__ import annotations

import json
from contextlib import contextmanager

import typer

from synth.config import BackendConfig, Sampling  # plain dataclasses: the one place defaults live
from synth.server import API_KEY_ENV, LOOPBACK, ServeConfig  # (standard library only: cheap to import)

synth_app = typer.Typer(
    help=(
        "Synthetic data with an LLM: textbook sections, exercises with sandbox-verified answers, rephrased web "
        "pages, and rubric scores for the classifiers. Every job writes docs/ + rejected/ like `assay run`, "
        "dedups and decontaminates what it generates, caches every request (a rerun after a kill generates "
        "nothing twice), and reports tokens and time per backend.\n\n"
        "Example: assay synth textbooks --topics topics.txt --model models/smollm2 --out out/textbooks\n"
        "See docs/synth.md."
    ),
    no_args_is_help=True,
)

# options shared by the generating commands (one definition each)
MODEL = typer.Option(BackendConfig.model, help="local model directory or .gguf file (transformers, vllm)")
BACKEND = typer.Option(BackendConfig.kind, help="transformers | openai | vllm")
GGUF = typer.Option(None, help="GGUF file name inside --model when it is a directory")
BASE_URL = typer.Option(BackendConfig.base_url, help="openai: the server's base URL")
SERVED = typer.Option(None, help="openai: the server's model name (default: its first)")
DEVICE = typer.Option(BackendConfig.device, help="transformers: cpu | cuda")
BATCH = typer.Option(BackendConfig.batch_size, help="prompts per batch")
TP = typer.Option(BackendConfig.tensor_parallel_size, help="vllm: tensor-parallel size")
MAXLEN = typer.Option(BackendConfig.max_model_len, help="vllm: max model length")
NEW = typer.Option(Sampling.max_new_tokens, help="max new tokens per request")
TEMP = typer.Option(Sampling.temperature, help="sampling temperature (0 = greedy)")
TOP_P = typer.Option(Sampling.top_p, help="nucleus sampling mass")
SEED = typer.Option(Sampling.seed, help="run seed; each request derives its own from it")
CACHE = typer.Option(None, help="request cache folder (default OUT/cache); keep it to resume")
NO_DEDUP = typer.Option(False, "--no-dedup", help="skip exact/MinHash dedup of generated text")
AGAINST = typer.Option(None, help="also dedup against these web shards (an `assay run` output)")
NO_DECONTAM = typer.Option(False, "--no-decontam", help="skip n-gram decontamination against MMLU")
NGRAM = typer.Option(None, help="decontamination n-gram size (default: DecontamConfig.n = 13)")
EVAL_JSONL = typer.Option(None, help="more evaluation sets to decontaminate against (JSONL, repeatable)")
WORKERS = typer.Option(1, help="local Beam worker processes (each loads one model)")
THREADS = typer.Option(BackendConfig.cpu_threads, help="torch CPU threads per worker (workers x threads <= cores)")


@contextmanager
def _clear_errors():
    """Known failures: one line saying what to do, exit status 2."""
    from synth.backends.openai_backend import BackendHTTPError
    from synth.isolation import SandboxUnavailable

    try:
        yield
    except (ValueError, FileNotFoundError, ImportError, BackendHTTPError, SandboxUnavailable) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


def _job(out, backend, model, gguf_file, base_url, served_model, device, batch_size, tp, max_len, max_new, temp,
         top_p, seed, cache, no_dedup, against, no_decontam, ngram, eval_jsonl, workers, threads):
    from curation.decontam import DecontamConfig
    from pipelines.synth_generate import GenerateJobConfig

    bcfg = BackendConfig(kind=backend, model=model, gguf_file=gguf_file, base_url=base_url, served_model=served_model,
                         device=device, batch_size=batch_size, tensor_parallel_size=tp, max_model_len=max_len,
                         cpu_threads=threads)
    decontam = None if no_decontam else DecontamConfig(**_given(n=ngram, eval_jsonl=list(eval_jsonl or [])))
    return GenerateJobConfig(output=out, backend=bcfg, sampling=Sampling(max_new_tokens=max_new, temperature=temp,
                                                                         top_p=top_p, seed=seed),
                             cache_dir=cache, batch_size=batch_size, dedup=not no_dedup, dedup_against=against,
                             decontam=decontam, workers=workers)


def _report(result: dict, out: str) -> None:
    typer.echo(f"kept {result['kept']}, rejected {result['rejected']} -> {out} "
               f"(coverage: {result.get('coverage', '-')})")
    for kind, usage in result.get("usage", {}).items():
        typer.echo(f"  {kind}: {json.dumps(usage)}")


def _given(**kwargs):
    """Only the options the user set: everything else keeps its dataclass default."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@synth_app.command("textbooks")
def textbooks(
    out: str = typer.Option(..., help="output folder (docs/, rejected/, stats/, cache/)"),
    topics: str = typer.Option(None, help="topic list: one topic per line"),
    pages: str = typer.Option(None, help="curated web shards: write sections inspired by these pages"),
    max_pages: int = typer.Option(None, help="only the first N pages of --pages (default: all, read in the pipeline)"),
    audiences: str = typer.Option(None, help="comma-separated audiences (default: 4 levels)"),
    styles: str = typer.Option(None, help="comma-separated styles (default: chapter, story, lecture notes)"),
    outline_sections: int = typer.Option(0, help="N > 0: write an outline of N sections first, then each section"),
    model: str = MODEL, backend: str = BACKEND, gguf_file: str = GGUF, base_url: str = BASE_URL,
    served_model: str = SERVED, device: str = DEVICE, batch_size: int = BATCH, tensor_parallel_size: int = TP,
    max_model_len: int = MAXLEN, max_new_tokens: int = NEW, temperature: float = TEMP, top_p: float = TOP_P,
    seed: int = SEED, cache: str = CACHE, no_dedup: bool = NO_DEDUP, dedup_against: str = AGAINST,
    no_decontam: bool = NO_DECONTAM, ngram: int = NGRAM, eval_jsonl: list[str] = EVAL_JSONL, workers: int = WORKERS,
    threads: int = THREADS,
) -> None:
    """Textbook sections for topics x audiences x styles (or inspired by web pages).

    Example: assay synth textbooks --topics topics.txt --audiences "high school students" --model M --out out/tb
    """
    from pipelines.synth_generate import run_textbooks
    from synth.seeds import read_pages, read_topics
    from synth.textbooks import TextbookConfig

    with _clear_errors():
        job = _job(out, backend, model, gguf_file, base_url, served_model, device, batch_size, tensor_parallel_size,
                   max_model_len, max_new_tokens, temperature, top_p, seed, cache, no_dedup, dedup_against,
                   no_decontam, ngram, eval_jsonl, workers, threads)
        cfg = TextbookConfig(outline_sections=outline_sections, seed=seed)
        cfg.audiences = _split(audiences) or cfg.audiences
        cfg.styles = _split(styles) or cfg.styles
        page_input = list(read_pages(pages, max_pages)) if pages and max_pages else pages
        result = run_textbooks(job, cfg, topics=read_topics(topics) if topics else None, pages=page_input)
    _report(result, out)


@synth_app.command("exercises")
def exercises(
    out: str = typer.Option(..., help="output folder"),
    kinds: str = typer.Option(None, help="comma-separated: arithmetic, algebra, word_problem, code (default: all)"),
    per_kind: int = typer.Option(None, help="exercises per kind (default 4)"),
    verify: str = typer.Option(None, help="program (default): the model explains the sandbox's answer; agree: the "
                                          "model solves and must match it"),
    model: str = MODEL, backend: str = BACKEND, gguf_file: str = GGUF, base_url: str = BASE_URL,
    served_model: str = SERVED, device: str = DEVICE, batch_size: int = BATCH, tensor_parallel_size: int = TP,
    max_model_len: int = MAXLEN, max_new_tokens: int = NEW, temperature: float = TEMP, top_p: float = TOP_P,
    seed: int = SEED, cache: str = CACHE, no_dedup: bool = NO_DEDUP, dedup_against: str = AGAINST,
    no_decontam: bool = NO_DECONTAM, ngram: int = NGRAM, eval_jsonl: list[str] = EVAL_JSONL, workers: int = WORKERS,
    threads: int = THREADS,
    unsafe_no_isolation: bool = typer.Option(
        False, "--unsafe-no-isolation",
        help="DANGEROUS: run model-written code without the OS sandbox (bubblewrap namespaces, seccomp), with "
             "only resource limits and an audit hook, for machines that cannot isolate. Every row records it."),
) -> None:
    """Reasoning exercises whose answers are computed in the sandbox; only verified ones are kept.

    Programs run in an OS sandbox (bubblewrap: namespaces, seccomp, a fresh uid per run as root; see
    docs/security.md). If it cannot be applied here the command stops before generating and says why.

    Example: assay synth exercises --kinds algebra,code --per-kind 100 --verify agree --model M --out out/ex
    """
    from pipelines.synth_generate import run_exercises
    from synth.config import SandboxLimits
    from synth.exercises import ExerciseConfig

    with _clear_errors():
        job = _job(out, backend, model, gguf_file, base_url, served_model, device, batch_size, tensor_parallel_size,
                   max_model_len, max_new_tokens, temperature, top_p, seed, cache, no_dedup, dedup_against,
                   no_decontam, ngram, eval_jsonl, workers, threads)
        limits = SandboxLimits(unsafe_no_isolation=unsafe_no_isolation)
        result = run_exercises(job, ExerciseConfig(**_given(kinds=_split(kinds), per_kind=per_kind, verify=verify,
                                                            seed=seed), limits=limits))
    _report(result, out)


@synth_app.command("rephrase")
def rephrase(
    out: str = typer.Option(..., help="output folder"),
    pages: str = typer.Option(..., help="web shards to rephrase (an `assay run` output)"),
    max_pages: int = typer.Option(None, help="only the first N pages (default: all, read in the pipeline)"),
    modes: str = typer.Option(None, help="comma-separated: encyclopedic (default), qa, distill, knowledge_list"),
    model: str = MODEL, backend: str = BACKEND, gguf_file: str = GGUF, base_url: str = BASE_URL,
    served_model: str = SERVED, device: str = DEVICE, batch_size: int = BATCH, tensor_parallel_size: int = TP,
    max_model_len: int = MAXLEN, max_new_tokens: int = NEW, temperature: float = TEMP, top_p: float = TOP_P,
    seed: int = SEED, cache: str = CACHE, no_dedup: bool = NO_DEDUP, dedup_against: str = AGAINST,
    no_decontam: bool = NO_DECONTAM, ngram: int = NGRAM, eval_jsonl: list[str] = EVAL_JSONL, workers: int = WORKERS,
    threads: int = THREADS,
) -> None:
    """Rewrite web documents (Nemotron-CC modes); each output names its source page as parent_id.

    Example: assay synth rephrase --pages out/run --modes qa,distill --model M --out out/rephrased
    """
    from pipelines.synth_generate import run_rephrase
    from synth.rephrase import RephraseConfig
    from synth.seeds import read_pages

    with _clear_errors():
        job = _job(out, backend, model, gguf_file, base_url, served_model, device, batch_size, tensor_parallel_size,
                   max_model_len, max_new_tokens, temperature, top_p, seed, cache, no_dedup, dedup_against,
                   no_decontam, ngram, eval_jsonl, workers, threads)
        result = run_rephrase(job, RephraseConfig(**_given(modes=_split(modes), seed=seed)),
                              list(read_pages(pages, max_pages)) if max_pages else pages)
    _report(result, out)


@synth_app.command("annotate")
def annotate(
    shards: str = typer.Option(..., help="document shards to score (an `assay run` output or docs/ folder)"),
    out: str = typer.Option(..., help="output folder: the same documents plus score columns"),
    rubrics: str = typer.Option(None, help="comma-separated: edu_score (default), knowledge_score"),
    max_chars: int = typer.Option(None, help="page characters shown to the model (default 3000)"),
    model: str = MODEL, backend: str = BACKEND, gguf_file: str = GGUF, base_url: str = BASE_URL,
    served_model: str = SERVED, device: str = DEVICE, batch_size: int = BATCH, tensor_parallel_size: int = TP,
    max_model_len: int = MAXLEN, cache: str = CACHE, workers: int = WORKERS, threads: int = THREADS,
) -> None:
    """Rubric scores (expected 0-5 grade from the score tokens' probabilities) as classifier label columns.

    Example: assay synth annotate --shards out/run --rubrics edu_score,knowledge_score --model M --out out/labelled
    then:    assay classify labels --shards out/labelled --score-column edu_score --out labels/edu
    """
    from pipelines.synth_annotate import AnnotateJobConfig, run_annotate
    from synth.rubric import RubricConfig

    with _clear_errors():
        bcfg = BackendConfig(kind=backend, model=model, gguf_file=gguf_file, base_url=base_url,
                             served_model=served_model, device=device, batch_size=batch_size,
                             tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len, cpu_threads=threads)
        result = run_annotate(AnnotateJobConfig(shards, out, bcfg, RubricConfig(**_given(rubrics=_split(rubrics),
                                                                                        max_chars=max_chars)),
                                                cache_dir=cache, batch_size=batch_size, workers=workers))
    _report(result, out)


@synth_app.command("decontam")
def decontam(
    shards: str = typer.Option(..., help="synthetic or web shards to check"),
    out: str = typer.Option(..., help="output folder: clean documents; flagged ones in rejected/"),
    ngram: int = NGRAM,
    eval_jsonl: list[str] = EVAL_JSONL,
    no_mmlu: bool = typer.Option(False, "--no-mmlu", help="do not check against the shipped MMLU questions"),
    min_hits: int = typer.Option(None, help="shared n-grams with one item needed to flag (default 1)"),
    workers: int = typer.Option(2, help="local Beam worker processes"),
) -> None:
    """Drop documents sharing n-grams with evaluation items; the ledger names the benchmark item.

    Example: assay synth decontam --shards out/run --eval-jsonl my_eval.jsonl --out out/clean
    """
    from curation.decontam import DecontamConfig
    from pipelines.synth_decontam import DecontamJobConfig, run_decontam

    with _clear_errors():
        cfg = DecontamConfig(**_given(n=ngram, min_hits=min_hits, mmlu=not no_mmlu, eval_jsonl=list(eval_jsonl or [])))
        result = run_decontam(DecontamJobConfig(shards, out, cfg, workers=workers))
    _report(result, out)


@synth_app.command("coverage")
def coverage(output: str = typer.Option(..., help="a synthetic output folder")) -> None:
    """(Re)write OUTPUT/stats/coverage.{json,md}: counts per topic x audience x style, lengths, rejections.

    Example: assay synth coverage --output out/textbooks
    """
    from synth.coverage import to_markdown, write_coverage

    with _clear_errors():
        typer.echo(to_markdown(write_coverage(output)))


@synth_app.command("serve")
def serve(
    model: str = typer.Option(..., help="local model directory or .gguf file"),
    gguf_file: str = GGUF,
    host: str = typer.Option(ServeConfig.host, help="address to listen on (loopback by default; anything else "
                                                    "exposes the model to the network: set an API key)"),
    port: int = typer.Option(ServeConfig.port, help="port (0 picks a free one)"),
    served_model: str = typer.Option(None, help="model name clients send (default: the file name)"),
    allowed_host: list[str] = typer.Option(None, "--allowed-host",
                                           help="another Host header to accept (NAME or NAME:PORT), e.g. the name "
                                                "clients use for a non-loopback --host; repeatable"),
    max_body_bytes: int = typer.Option(ServeConfig.max_body_bytes, help="largest request body; bigger get 413"),
    max_concurrent: int = typer.Option(ServeConfig.max_concurrent,
                                       help="connections served at once; more get 503 with Retry-After"),
    socket_timeout: float = typer.Option(ServeConfig.socket_timeout_s,
                                         help="seconds a socket read or write may stall before the connection is "
                                              "dropped (frees its slot)"),
    api_key: str = typer.Option(None, envvar=API_KEY_ENV, show_envvar=True,
                                help="require 'Authorization: Bearer KEY' on every request, /health included; "
                                     f"prefer ${API_KEY_ENV} (a command-line value shows in ps). Clients: the "
                                     "openai backend sends $OPENAI_API_KEY"),
    device: str = DEVICE, batch_size: int = BATCH, threads: int = THREADS,
) -> None:
    """An OpenAI-compatible chat-completions server for a local model (transformers backend, batched).

    Hardened for a machine with a browser: binds 127.0.0.1, answers only Host headers naming the bound address
    (421 otherwise; --allowed-host adds names), takes only JSON POSTs (415) within --max-body-bytes (413), serves
    at most --max-concurrent connections (503 beyond), and with an API key refuses requests without it (401).

    Example: assay synth serve --model models/smollm2 --port 8000
    then:    assay synth textbooks --backend openai --base-url http://127.0.0.1:8000/v1 --topics t.txt --out out/tb
    """
    from synth.backends import make_backend
    from synth.server import make_server

    with _clear_errors():
        cfg = ServeConfig(host=host, port=port, served_model=served_model, allowed_hosts=list(allowed_host or []),
                          max_body_bytes=max_body_bytes, max_concurrent=max_concurrent, socket_timeout_s=socket_timeout,
                          api_key=api_key or None)
        backend = make_backend(BackendConfig(model=model, gguf_file=gguf_file, device=device, batch_size=batch_size,
                                             cpu_threads=threads))
        server = make_server(backend, cfg)
    typer.echo(f"serving {backend.model_id} on http://{server.server_address[0]}:{server.server_address[1]}/v1",
               err=False)
    _serve_notes(cfg)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _serve_notes(cfg: ServeConfig) -> None:
    """What a non-default set-up means, on stderr (never the key itself)."""
    if cfg.api_key:
        typer.echo("requests need 'Authorization: Bearer KEY' (the API key given at start)", err=True)
    if cfg.host.strip().lower() not in LOOPBACK:
        typer.echo(f"warning: listening on {cfg.host}, reachable from the network"
                   + ("" if cfg.api_key else f"; set ${API_KEY_ENV} to require a key"), err=True)
        if not cfg.allowed_hosts:
            typer.echo(f"only Host {cfg.host} is answered: add --allowed-host NAME for each name clients use", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
