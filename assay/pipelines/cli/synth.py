"""`assay synth ...`: synthetic data (textbooks, verified exercises, rephrasing), rubric annotation,
decontamination, coverage reports, and an OpenAI-compatible server for a local model."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Optional, get_args

import typer

from assay.curation.decontam import DecontamConfig
from assay.pipelines.cli.options import WorkerOptions, fail, known_errors, option, uses_options
from assay.synth.config import BackendConfig, BackendKind, Sampling  # plain dataclasses: the one place defaults live
from assay.synth.server import API_KEY_ENV, LOOPBACK, ServeConfig  # (standard library only: cheap to import)

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

@dataclass
class ModelOptions:
    """Which model answers, and how (every command that runs a model)."""

    model: str = option(BackendConfig.model, "local model directory or .gguf file (transformers, vllm)")
    backend: str = option(BackendConfig.kind, " | ".join(get_args(BackendKind)))
    gguf_file: Optional[str] = option(None, "GGUF file name inside --model when it is a directory")
    base_url: str = option(BackendConfig.base_url, "openai: the server's base URL")
    served_model: Optional[str] = option(None, "the model's name on an OpenAI-compatible server (openai backend: "
                                               "the name to ask for, default its first; serve: the name it "
                                               "answers to, default the file name)")
    device: str = option(BackendConfig.device, "transformers: cpu | cuda")
    batch_size: int = option(BackendConfig.batch_size, "prompts per batch")
    tensor_parallel_size: int = option(BackendConfig.tensor_parallel_size, "vllm: tensor-parallel size")
    max_model_len: Optional[int] = option(BackendConfig.max_model_len, "vllm: max model length")
    threads: int = option(BackendConfig.cpu_threads, "torch CPU threads per worker (workers x threads <= cores)")

    def backend_config(self) -> BackendConfig:
        return BackendConfig(kind=self.backend, model=self.model, gguf_file=self.gguf_file, base_url=self.base_url,
                             served_model=self.served_model, device=self.device, batch_size=self.batch_size,
                             tensor_parallel_size=self.tensor_parallel_size, max_model_len=self.max_model_len,
                             cpu_threads=self.threads)


@dataclass
class DecontamOptions:
    """What generated or given documents are checked against (decontam and every generator)."""

    ngram: Optional[int] = option(None, f"decontamination n-gram size (default: {DecontamConfig.n})")
    eval_jsonl: Optional[list[str]] = option(None, "more evaluation sets to decontaminate against (JSONL, repeatable)")

    def config(self, **more) -> DecontamConfig:
        return DecontamConfig(**_given(n=self.ngram, eval_jsonl=list(self.eval_jsonl or []), **more))


@dataclass
class GenerationOptions:
    """Sampling, the request cache and quality control of the generating commands."""

    max_new_tokens: int = option(Sampling.max_new_tokens, "max new tokens per request")
    temperature: float = option(Sampling.temperature, "sampling temperature (0 = greedy)")
    top_p: float = option(Sampling.top_p, "nucleus sampling mass")
    seed: int = option(Sampling.seed, "run seed; each request derives its own from it")
    cache: Optional[str] = option(None, "request cache folder (default OUT/cache); keep it to resume")
    no_dedup: bool = option(False, "skip exact/MinHash dedup of generated text", "--no-dedup")
    dedup_against: Optional[str] = option(None, "also dedup against these web shards (an `assay run` output)")
    no_decontam: bool = option(False, "skip n-gram decontamination against MMLU", "--no-decontam")

    def job(self, out: str, llm: ModelOptions, decontam: DecontamOptions, run: WorkerOptions):
        from assay.pipelines.job.runner import RunnerConfig
        from assay.pipelines.synth_jobs.generate import GenerateJobConfig

        sampling = Sampling(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                            seed=self.seed)
        return GenerateJobConfig(output=out, backend=llm.backend_config(), sampling=sampling, cache_dir=self.cache,
                                 dedup=not self.no_dedup, dedup_against=self.dedup_against,
                                 decontam=None if self.no_decontam else decontam.config(),
                                 runner=run.runner(RunnerConfig(workers=1)))


@contextlib.contextmanager
def _clear_errors():
    """Known failures: one line saying what to do, exit status 2. A sandbox that cannot isolate, on the driver
    or in a Beam worker, is one paragraph (what failed, which layer, what to do); its traceback goes to a log."""
    from assay.synth.backends.openai_backend import BackendHTTPError

    with known_errors(ValueError, FileNotFoundError, FileExistsError, ImportError, BackendHTTPError):
        try:
            yield
        except Exception as exc:
            from assay.synth.sandbox.errors import explain, sandbox_failure

            found = sandbox_failure(exc)
            if found is None:
                raise
            fail(explain(found, _traceback_log(exc)))


def _traceback_log(exc: BaseException) -> str | None:
    """A private temporary file holding `exc`'s traceback (None if none can be written)."""
    import os
    import tempfile
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix="assay-sandbox-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


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
@uses_options
def textbooks(
    out: str = typer.Option(..., help="output folder (docs/, rejected/, stats/, cache/)"),
    topics: str = typer.Option(None, help="topic list: one topic per line"),
    pages: str = typer.Option(None, help="curated web shards: write sections inspired by these pages"),
    max_pages: int = typer.Option(None, help="only the first N pages of --pages (default: all, read in the pipeline)"),
    audiences: str = typer.Option(None, help="comma-separated audiences (default: 4 levels)"),
    styles: str = typer.Option(None, help="comma-separated styles (default: chapter, story, lecture notes)"),
    outline_sections: int = typer.Option(0, help="N > 0: write an outline of N sections first, then each section"),
    llm: ModelOptions = ModelOptions(), gen: GenerationOptions = GenerationOptions(),
    decontam: DecontamOptions = DecontamOptions(), run: WorkerOptions = WorkerOptions(),
) -> None:
    """Textbook sections for topics x audiences x styles (or inspired by web pages).

    Example: assay synth textbooks --topics topics.txt --audiences "high school students" --model M --out out/tb
    """
    from assay.pipelines.synth_jobs.generate import run_textbooks
    from assay.synth.seeds import read_pages, read_topics
    from assay.synth.textbooks import TextbookConfig

    with _clear_errors():
        cfg = TextbookConfig(outline_sections=outline_sections, seed=gen.seed)
        cfg.audiences = _split(audiences) or cfg.audiences
        cfg.styles = _split(styles) or cfg.styles
        page_input = list(read_pages(pages, max_pages)) if pages and max_pages else pages
        result = run_textbooks(gen.job(out, llm, decontam, run), cfg, topics=read_topics(topics) if topics else None,
                               pages=page_input)
    _report(result, out)


@synth_app.command("exercises")
@uses_options
def exercises(
    out: str = typer.Option(..., help="output folder"),
    kinds: str = typer.Option(None, help="comma-separated: arithmetic, algebra, word_problem, code (default: all)"),
    per_kind: int = typer.Option(None, help="exercises per kind (default 4)"),
    verify: str = typer.Option(None, help="program (default): the model explains the sandbox's answer; agree: the "
                                          "model solves and must match it"),
    unsafe_no_isolation: bool = typer.Option(
        False, "--unsafe-no-isolation",
        help="DANGEROUS: run model-written code without the OS sandbox (bubblewrap namespaces, seccomp), with "
             "only resource limits and an audit hook, for machines that cannot isolate. Every row records it."),
    llm: ModelOptions = ModelOptions(), gen: GenerationOptions = GenerationOptions(),
    decontam: DecontamOptions = DecontamOptions(), run: WorkerOptions = WorkerOptions(),
) -> None:
    """Reasoning exercises whose answers are computed in the sandbox; only verified ones are kept.

    Programs run in an OS sandbox (bubblewrap: namespaces, seccomp, a fresh uid per run as root; see
    docs/security.md). If it cannot be applied here the command stops before generating and says why.

    Example: assay synth exercises --kinds algebra,code --per-kind 100 --verify agree --model M --out out/ex
    """
    from assay.synth.config import SandboxLimits
    from assay.synth.exercises import ExerciseConfig
    from assay.synth.sandbox import require_isolation

    with _clear_errors():
        limits = SandboxLimits(unsafe_no_isolation=unsafe_no_isolation)
        cfg = ExerciseConfig(**_given(kinds=_split(kinds), per_kind=per_kind, verify=verify, seed=gen.seed),
                             limits=limits)
        require_isolation(limits)  # a machine that cannot isolate is told before Beam is even imported
        from assay.pipelines.synth_jobs.generate import run_exercises

        result = run_exercises(gen.job(out, llm, decontam, run), cfg)
    _report(result, out)


@synth_app.command("rephrase")
@uses_options
def rephrase(
    out: str = typer.Option(..., help="output folder"),
    pages: str = typer.Option(..., help="web shards to rephrase (an `assay run` output)"),
    max_pages: int = typer.Option(None, help="only the first N pages (default: all, read in the pipeline)"),
    modes: str = typer.Option(None, help="comma-separated: encyclopedic (default), qa, distill, knowledge_list"),
    llm: ModelOptions = ModelOptions(), gen: GenerationOptions = GenerationOptions(),
    decontam: DecontamOptions = DecontamOptions(), run: WorkerOptions = WorkerOptions(),
) -> None:
    """Rewrite web documents (Nemotron-CC modes); each output names its source page as parent_id.

    Example: assay synth rephrase --pages out/run --modes qa,distill --model M --out out/rephrased
    """
    from assay.pipelines.synth_jobs.generate import run_rephrase
    from assay.synth.rephrase import RephraseConfig
    from assay.synth.seeds import read_pages

    with _clear_errors():
        result = run_rephrase(gen.job(out, llm, decontam, run), RephraseConfig(**_given(modes=_split(modes),
                                                                                         seed=gen.seed)),
                              list(read_pages(pages, max_pages)) if max_pages else pages)
    _report(result, out)


@synth_app.command("annotate")
@uses_options
def annotate(
    shards: str = typer.Option(..., help="document shards to score (an `assay run` output or docs/ folder)"),
    out: str = typer.Option(..., help="output folder: the same documents plus score columns"),
    rubrics: str = typer.Option(None, help="comma-separated: edu_score (default), knowledge_score"),
    max_chars: int = typer.Option(None, help="page characters shown to the model (default 3000)"),
    cache: str = typer.Option(None, help="request cache folder (default OUT/cache); keep it to resume"),
    llm: ModelOptions = ModelOptions(), run: WorkerOptions = WorkerOptions(),
) -> None:
    """Rubric scores (expected 0-5 grade from the score tokens' probabilities) as classifier label columns.

    Example: assay synth annotate --shards out/run --rubrics edu_score,knowledge_score --model M --out out/labelled
    then:    assay classify labels --shards out/labelled --score-column edu_score --out labels/edu
    """
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.synth_jobs.annotate import AnnotateJobConfig, run_annotate
    from assay.synth.rubric import RubricConfig

    with _clear_errors():
        rubric = RubricConfig(**_given(rubrics=_split(rubrics), max_chars=max_chars))
        result = run_annotate(AnnotateJobConfig(shards, out, llm.backend_config(), rubric, cache_dir=cache,
                                                runner=run.runner(RunnerConfig(workers=1))))
    _report(result, out)


@synth_app.command("decontam")
@uses_options
def decontam(
    shards: str = typer.Option(..., help="synthetic or web shards to check"),
    out: str = typer.Option(..., help="output folder: clean documents; flagged ones in rejected/"),
    no_mmlu: bool = typer.Option(False, "--no-mmlu", help="do not check against the shipped MMLU questions"),
    min_hits: int = typer.Option(None, help="shared n-grams with one item needed to flag (default 1)"),
    check: DecontamOptions = DecontamOptions(), run: WorkerOptions = WorkerOptions(),
) -> None:
    """Drop documents sharing n-grams with evaluation items; the ledger names the benchmark item.

    Example: assay synth decontam --shards out/run --eval-jsonl my_eval.jsonl --out out/clean
    """
    from assay.pipelines.job.runner import RunnerConfig
    from assay.pipelines.synth_jobs.decontam import DecontamJobConfig, run_decontam

    with _clear_errors():
        cfg = check.config(**_given(min_hits=min_hits), mmlu=not no_mmlu)
        result = run_decontam(DecontamJobConfig(shards, out, cfg, runner=run.runner(RunnerConfig())))
    _report(result, out)


@synth_app.command("coverage")
def coverage(output: str = typer.Option(..., help="a synthetic output folder")) -> None:
    """(Re)write OUTPUT/stats/coverage.{json,md}: counts per topic x audience x style, lengths, rejections.

    Example: assay synth coverage --output out/textbooks
    """
    from assay.synth.coverage import to_markdown, write_coverage

    with _clear_errors():
        typer.echo(to_markdown(write_coverage(output)))


@synth_app.command("serve")
@uses_options
def serve(
    host: str = typer.Option(ServeConfig.host, help="address to listen on (loopback by default; anything else "
                                                    "exposes the model to the network: set an API key)"),
    port: int = typer.Option(ServeConfig.port, help="port (0 picks a free one)"),
    allowed_host: list[str] = typer.Option(None, "--allowed-host",
                                           help="another Host header to accept (NAME or NAME:PORT), e.g. the name "
                                                "clients use for a non-loopback --host; repeatable"),
    max_body_bytes: int = typer.Option(ServeConfig.max_body_bytes, help="largest request body; bigger get 413"),
    max_concurrent: int = typer.Option(ServeConfig.max_concurrent,
                                       help="connections served at once; more get 503 with Retry-After"),
    socket_timeout: float = typer.Option(ServeConfig.socket_timeout_s,
                                         help="seconds a socket read or write may stall before the connection is "
                                              "dropped (frees its slot)"),
    read_deadline: float = typer.Option(ServeConfig.read_deadline_s,
                                        help="seconds for a request's line, headers and body to arrive, in total "
                                             "(408 later): a client trickling bytes cannot hold a slot"),
    evict_after: float = typer.Option(ServeConfig.evict_after_s,
                                      help="with every slot taken, a connection still sending its request (or idle) "
                                           "after this many seconds is closed to make room for a new one"),
    max_prompt_tokens: Optional[int] = typer.Option(None, help="longest prompt in tokens (400 beyond); default: "
                                                               "the model's context"),
    api_key: str = typer.Option(None, envvar=API_KEY_ENV, show_envvar=True,
                                help="require 'Authorization: Bearer KEY' on every request, /health included; "
                                     f"prefer ${API_KEY_ENV} (a command-line value shows in ps). Clients: the "
                                     "openai backend sends $OPENAI_API_KEY"),
    llm: ModelOptions = ModelOptions(),
) -> None:
    """An OpenAI-compatible chat-completions server for a local model (transformers backend, batched).

    Hardened for a machine with a browser: binds 127.0.0.1, answers only Host headers naming the bound address
    (421 otherwise; --allowed-host adds names), takes only JSON POSTs (415) within --max-body-bytes (413), serves
    at most --max-concurrent connections (503 beyond), each request arriving within --read-deadline (408), checks
    every request field and the prompt's length (400), and with an API key refuses requests without it (401).

    Example: assay synth serve --model models/smollm2 --port 8000
    then:    assay synth textbooks --backend openai --base-url http://127.0.0.1:8000/v1 --topics t.txt --out out/tb
    """
    from assay.synth.backends import make_backend
    from assay.synth.server import make_server

    with _clear_errors():
        if not llm.model:
            raise ValueError("give --model: a local model directory or .gguf file to serve")
        cfg = ServeConfig(host=host, port=port, served_model=llm.served_model, allowed_hosts=list(allowed_host or []),
                          max_body_bytes=max_body_bytes, max_concurrent=max_concurrent, socket_timeout_s=socket_timeout,
                          read_deadline_s=read_deadline, evict_after_s=evict_after, max_prompt_tokens=max_prompt_tokens,
                          api_key=api_key or None)
        backend = make_backend(llm.backend_config())
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
