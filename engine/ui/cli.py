"""The ``acdc-engine`` command line."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .. import __version__
from .commands import quiet_libraries, set_option
from ..config import Config, load_config
from ..errors import EXIT_INTERRUPTED, EXIT_RUNTIME, AcdcError, AcdcRuntimeError
from ..files import WriteFailed, check_target, copy_new, missing_dirs, remove_empty_dirs, write_new
from ..plugin_manager import ALWAYS_ON, PluginContext, discover, plugin_commands
from ..store import RunStore
from .progress import TickingProgress
from .live_view import ProgressView, archive_table, fitted_tables, time_tables

console = Console(soft_wrap=True)
#: Errors, warnings and notices go to stderr: stdout carries what a command prints (e.g. ``status --json``).
err_console = Console(stderr=True, soft_wrap=True)


def _plugins_option(f):
    return click.option("--plugins", help="Comma-separated optional plugins, e.g. merge,taskgen "
                        f"(always on: {', '.join(ALWAYS_ON)}).")(f)


def _stop_on_ctrl_c(run) -> None:
    """First Ctrl-C: stop at the end of the current batch; a second one: stop at once."""
    def handler(signum, frame):
        if run.stop_requested:
            raise KeyboardInterrupt
        run.stop_requested = True
        err_console.print("stopping at the end of the current batch (Ctrl-C again to stop at once)", highlight=False)

    signal.signal(signal.SIGINT, handler)


def _execute(config: Config, store: RunStore, plugins: PluginContext, view: ProgressView) -> None:
    """Runs (or resumes) the run of ``store`` with the configured ``plugins``, ``view`` among them."""
    from ..run.loop import Coevolution, RunInterrupted

    quiet_libraries()
    run = None
    try:
        run = Coevolution(config, store, plugins)
        console.print("seeds: " + ", ".join(f"{spec} ({digest[:12]})" for spec, digest in run.population.seed_digests().items()),
                      highlight=False, soft_wrap=True)
        _stop_on_ctrl_c(run)
        with view:
            run.run()
    except (KeyboardInterrupt, RunInterrupted) as exc:
        note = f" ({exc})" if str(exc) else ""
        err_console.print(f"interrupted{note}; committed generations are kept. Resume with:", highlight=False)
        err_console.print(f"  acdc-engine resume {store.run_dir}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    except (OSError, sqlite3.OperationalError) as exc:  # the environment's fault: a full disk, a read-only folder
        try:
            last = store.last_generation()
        except sqlite3.Error:
            last = None
        kept = f"generation {last} is committed" if last is not None else "no generation is committed yet"
        raise AcdcRuntimeError(f"{_os_error(exc)}; {kept}. Free space (or fix the folder) and run: "
                               f"acdc-engine resume {store.run_dir}") from None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _close_quietly(run, store)  # an error while closing never hides the one that stopped the run
    console.print(f"results: {store.run_dir} (run.sqlite, weights/). Inspect: acdc-engine status {store.run_dir}")


def _close_quietly(run, store: RunStore) -> None:
    for closing in (run, store):
        try:
            if closing is not None:
                closing.close()
        except Exception as exc:  # noqa: BLE001 - reported, never raised over the first error
            err_console.print(f"warning: while closing: {exc}", style="yellow", highlight=False, markup=False)


def _os_error(exc: OSError | sqlite3.Error) -> str:
    """An OSError (or SQLite's own I/O error) as one line: what failed, on which file."""
    if isinstance(exc, sqlite3.Error):
        return f"the run database: {exc}"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _start(config_file, overrides, plugins, run_dir) -> None:
    extra = [f"run.plugins={[p.strip() for p in plugins.split(',') if p.strip()]!r}"] if plugins else []
    config = load_config(config_file, [*overrides, *extra])
    if run_dir is None:
        run_dir = Path(config.run.output_dir) / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    run_dir = Path(run_dir)
    made_dirs = missing_dirs(run_dir)  # the folder and its parents that the run creates (removed if it fails)
    before = set(run_dir.iterdir()) if run_dir.is_dir() else set()
    view = ProgressView(console)
    started = False
    try:
        with PluginContext(config, extra=[view]) as plugins:  # unknown plugin names fail before any work
            # the store first: a folder that cannot hold the run fails before minutes of preparation
            try:
                store = RunStore.create(run_dir, config.model_dump_json())
            except BaseException:  # nothing of it is left but the folders it made (another run's files are kept)
                remove_empty_dirs(made_dirs)
                raise
            try:
                quiet_libraries()  # before any plugin prepares: no library's own bars in the run's display
                plugins.hook.acdc_prepare_run(config=config, hook=plugins.hook)  # e.g. forging the first run's experts
            except BaseException:  # an error, Ctrl-C or exit while preparing: the folder is left as it was
                store.close()
                _remove_made(run_dir, before, made_dirs)
                raise
            started = True
            _execute(config, store, plugins, view)
    except AcdcError:  # the plugins are unconfigured by now (trackers have closed their files in the folder)
        if started and _nothing_committed(run_dir):  # a run that failed at its start leaves nothing it made
            _remove_made(run_dir, before, made_dirs)
        raise


def _remove_made(run_dir: Path, before: set[Path], made_dirs: list[Path]) -> None:
    """Removes what a failed start made in ``run_dir``: the entries it did not hold ``before``, then the
    folders of ``made_dirs`` (the run folder and parents it created) where they are empty."""
    for made in set(run_dir.iterdir()) - before if run_dir.is_dir() and not run_dir.is_symlink() else ():
        if made.is_dir() and not made.is_symlink():
            shutil.rmtree(made, ignore_errors=True)
        else:
            made.unlink(missing_ok=True)
    remove_empty_dirs(made_dirs)


def _nothing_committed(run_dir: Path) -> bool:
    try:
        store = RunStore.open(run_dir)
    except AcdcError:
        return False
    try:
        return store.last_generation() is None
    finally:
        store.close()


def _fail(message: str, code: int) -> None:
    """``error: MESSAGE`` as one line on stderr, then exit with ``code`` (see :mod:`acdc_engine.errors`)."""
    err_console.print(f"error: {message}", style="red", highlight=False, markup=False)
    sys.exit(code)


class _Group(click.Group):
    """The engine's commands and those plugins add (hook ``acdc_commands``); an AcdcError is one line on
    stderr, with its exit status (3 bad input, 1 runtime); see :mod:`acdc_engine.errors`."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *plugin_commands()})

    def get_command(self, ctx, name):
        own, found = super().get_command(ctx, name), plugin_commands()
        if name not in found:
            return own
        if own is not None:
            raise AcdcError(f"plugin {found[name][1]!r} adds a command {name!r}, which is the engine's own; "
                            "rename it")
        return found[name][0]

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AcdcError as exc:
            _fail(str(exc), exc.exit_code)
        except (OSError, sqlite3.OperationalError) as exc:  # the environment's fault outside a run (one line)
            _fail(_os_error(exc), EXIT_RUNTIME)
        except KeyboardInterrupt:  # Ctrl-C outside a run (a run says more itself)
            err_console.print("interrupted", highlight=False)
            sys.exit(EXIT_INTERRUPTED)


EXIT_STATUS_HELP = """Exit status:

\b
  0    success
  1    runtime error (a full disk, an unwritable folder; or an internal error)
  2    usage error (an unknown command or option, a missing argument)
  3    bad input (a config value, a seed model, a run folder, a plugin)
  130  interrupted (Ctrl-C); a run keeps its committed generations

Errors are one line on stderr. Config: ACDC_SECTION__KEY=value in the environment
overrides --config, and --set overrides both."""


@click.group(cls=_Group, invoke_without_command=True, epilog=EXIT_STATUS_HELP,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="acdc-engine", message="%(prog)s %(version)s")
@_plugins_option
@set_option
@click.pass_context
def main(ctx, plugins, overrides):
    """Coevolve LLM experts and tasks (AC/DC). With no command, runs the
    embedded default config."""
    ctx.obj = {"plugins": plugins, "overrides": overrides}
    if ctx.invoked_subcommand is None:
        _start(None, overrides, plugins, None)


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML file laid over the defaults.")
@set_option
@_plugins_option
@click.option("--run-dir", type=click.Path(path_type=Path), help="Directory for this run (default: a new one).")
@click.option("--executor", type=click.Choice(["local", "ray"]), help="Where models are built and evaluated "
              "(run.executor; ray needs acdc-engine[ray]).")
@click.pass_obj
def run(group, config_file, overrides, plugins, run_dir, executor):
    """Start a new run."""
    extra = [f"run.executor={executor}"] if executor else []
    _start(config_file, [*group["overrides"], *overrides, *extra], plugins or group["plugins"], run_dir)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def resume(run_dir):
    """Continue a run from its last committed generation."""
    store = RunStore.open(run_dir, writer=True)
    config, view = store.config(), ProgressView(console)
    try:
        plugins = PluginContext(config, extra=[view])
    except BaseException:
        store.close()
        raise
    with plugins:
        _execute(config, store, plugins, view)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object (schema: "
              "docs/architecture.md, 'status --json'; with the run's resolved config).")
def status(run_dir, as_json):
    """Show where a run stands (--json: the same as one JSON object)."""
    from .status import run_status, status_json

    store = RunStore.open(run_dir)
    try:
        facts = run_status(store)
    finally:
        store.close()
    if as_json:
        click.echo(status_json(facts))
        return
    out = console  # piped: 80 columns unless COLUMNS says otherwise; wide tables are split to fit
    last = facts["last_generation"]
    out.print(f"run {run_dir}: generation {last if last is not None else '-'} of {facts['generations']} "
              f"committed; plugins {', '.join(facts['plugins'])}", highlight=False)
    if facts["seeds"]:
        out.print("seeds: " + ", ".join(f"{spec} ({digest[:12]})" for spec, digest in facts["seeds"].items()),
                  highlight=False, soft_wrap=True)
    disk = facts["disk"]
    out.print(f"folder: {disk['own_bytes'] / 2**30:.2f} GiB of its own, {disk['shared_bytes'] / 2**30:.2f} GiB "
              f"shared by hard link (seeds from the cache); models kept as files {disk['models_as_files']}, "
              f"as recipes only {disk['models_as_recipes']} (rebuilt when needed)", highlight=False)
    if last is None:
        return
    out.print(archive_table(facts["archive"], title=f"archive after generation {last}"))
    out.print("tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(facts["tasks"].items())))
    for status, by in facts["task_reasons"].items():
        if by:
            out.print(f"  {status} by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())),
                      highlight=False, markup=False)
    keys = ["gen", "elites", "fit_max", "fit_mean", "coverage", "model_diversity", "task_diversity", "born",
            "rejected_models", "new_tasks", "rejected_tasks", "elapsed_s"]
    rows = [[f"{s.get(k):.3f}" if isinstance(s.get(k), float) and k != "elapsed_s" else str(s.get(k, "-"))
             for k in keys] for s in facts["per_generation"]]
    for table in (*fitted_tables("per generation", keys, rows, out.width),
                  *time_tables(facts["per_generation"], out.width)):
        out.print(table)
    force = facts["task_force"]
    if force is not None:
        out.print(f"task force {', '.join(force['model_ids'])}: Coverage {force['coverage']:.3f} of "
                  f"{force['n_tasks']} tasks (seed experts' own task force {force['seed_coverage']:.3f})")


@main.command()
def plugins():
    """List every plugin found, built-in or from an entry point, with its hooks."""
    table = Table(title="plugins")
    for col in ("name", "origin", "hooks"):
        table.add_column(col)
    found = discover()
    for info in found:
        table.add_row(info.name, info.origin, info.error or ", ".join(info.hooks))
    console.print(table)
    for kind, what in (("merge", "crossover (merge) methods, evolution.crossover"),
                       ("mutation", "mutations, evolution.mutation")):
        for info in found:
            if info.operators.get(kind):
                console.print(f"{what} ({info.name}): {', '.join(info.operators[kind])}", highlight=False)


@main.command("config-reference")
def config_reference():
    """Print the config reference (docs/config.md) as Markdown."""
    from ..config import reference_markdown

    click.echo(reference_markdown(), nl=False)


@main.group("config")
def config_group():
    """The resolved config of a run or of a config file (`config show`)."""


@config_group.command("show")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML file laid over the defaults.")
@set_option
@_plugins_option
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object instead of TOML.")
@click.pass_obj
def config_show(group, run_dir, config_file, overrides, plugins, as_json):
    """Print every resolved setting: of the run in RUN_DIR (its stored config), or of the config a `run`
    would use: the defaults, --config FILE, ACDC_SECTION__KEY environment variables and --set. The TOML
    printed is a --config file that gives the same config."""
    from ..config import config_toml

    group = group or {}
    if run_dir is not None:
        given = [name for name, value in (("--config", config_file), ("--set", overrides or group.get("overrides")),
                                          ("--plugins", plugins or group.get("plugins"))) if value]
        if given:
            raise click.UsageError(f"{given[0]} does not apply to RUN_DIR, whose config is stored with the run")
        store = RunStore.open(run_dir)
        try:
            config = store.config()
        finally:
            store.close()
    else:
        plugins = plugins or group.get("plugins")
        extra = [f"run.plugins={[p.strip() for p in plugins.split(',') if p.strip()]!r}"] if plugins else []
        config = load_config(config_file, [*group.get("overrides", ()), *extra, *overrides])
    click.echo(json.dumps(config.model_dump(mode="json"), indent=1) if as_json else config_toml(config), nl=False)
    if as_json:
        click.echo()


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("model_id")
def lineage(run_dir, model_id):
    """Print a model's ancestry tree with operators and fitness."""
    from ..models.lineage import lineage_tree

    console.print(lineage_tree(RunStore.open(run_dir), model_id))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--benchmark", "specs", multiple=True, metavar="SPEC",
              help="FILE.jsonl (question/answer records), FILE.json (BIG-bench task), humaneval or humaneval:N.")
@click.option("--lm-eval", "lm_tasks", metavar="TASK[,TASK...]",
              help="lm-evaluation-harness tasks, by name (extra [lm-eval]; offline unless HF_DATASETS_OFFLINE=0 "
                   "HF_HUB_OFFLINE=0); needs --json, beside which the per-sample log is written.")
@click.option("--lm-eval-include", type=click.Path(path_type=Path), metavar="DIR",
              help="A folder of lm-eval task YAML files (e.g. over local JSONL data) to take names from too.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many questions per lm-eval task.")
@click.option("--num-fewshot", type=click.IntRange(min=0), metavar="N",
              help="lm-eval: few-shot examples per question (default: each task's own).")
@click.option("--apply-chat-template", is_flag=True,
              help="lm-eval: ask through the base model's chat template (the seeds are chat models).")
@click.option("--system-instruction", metavar="TEXT", help="lm-eval: a system message before each question.")
@click.option("--gen-kwargs", "gen_kwargs", multiple=True, metavar="ARGS",
              help="lm-eval: generation settings over the tasks' own, as lm-eval's --gen_kwargs: "
                   "'temperature=0.7,do_sample=True,max_gen_toks=64' or a JSON object (until, max_gen_toks, "
                   "temperature, do_sample).")
@click.option("--output-path", type=click.Path(path_type=Path), metavar="DIR",
              help="lm-eval: where each member's results go in lm-eval's own format, one folder per member "
                   "(default: beside --json, FILE-lm-eval/).")
@click.option("--model-dir", "model_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Another checkpoint directory to compare (same architecture); repeatable.")
@click.option("--samples", type=click.IntRange(min=1), help="N for the control (default: the task-force size).")
@click.option("--method", type=click.Choice(["greedy", "exact", "top-fitness", "random"]),
              help="Re-select the task force from the kept models (default: the run's own).")
@click.option("--judge-dir", type=click.Path(path_type=Path), help="Judge checkpoint for best-of-N (default: base).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Answer length (default: the run's).")
@click.option("--answer-backend", metavar="NAME",
              help="Backend that answers the benchmarks, e.g. openvino (default: the run's "
                   "generation.answer_backend, else its backend); likelihoods stay with one that offers them.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of sampled answers (the control's, and lm-eval generation that --gen-kwargs samples).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the results as JSON here.")
def evaluate(run_dir, specs, lm_tasks, lm_eval_include, limit, num_fewshot, apply_chat_template, system_instruction,
             gen_kwargs, output_path, model_dirs, samples, method, judge_dir, max_new_tokens, answer_backend, seed,
             json_out):
    """Score the task force, the seeds, a control and other models on outside benchmarks
    (--benchmark) and lm-evaluation-harness tasks (--lm-eval)."""
    from ..evaluation.systems import Evaluation

    if not specs and not lm_tasks:
        raise AcdcError("evaluate needs --benchmark SPEC or --lm-eval TASK")
    if lm_tasks and not json_out:
        raise AcdcError("--lm-eval needs --json FILE: the report, with the per-sample log written beside it")
    if json_out:
        check_target(json_out, "--json")  # a bad destination is said before the evaluation, not after it
    quiet_libraries()
    lm = None
    if lm_tasks:
        from ..evaluation.lm_eval_adapter import LmEvalEvaluation, parse_gen_kwargs

        if output_path is not None and output_path.exists() and not output_path.is_dir():
            raise AcdcError(f"--output-path {output_path} is a file, not a folder")
        lm = LmEvalEvaluation([t.strip() for t in lm_tasks.split(",") if t.strip()], include=lm_eval_include,
                              limit=limit, num_fewshot=num_fewshot, apply_chat_template=apply_chat_template,
                              system_instruction=system_instruction, gen_kwargs=parse_gen_kwargs(gen_kwargs))
    elif num_fewshot is not None or apply_chat_template or system_instruction or gen_kwargs or output_path:
        raise AcdcError("--num-fewshot, --apply-chat-template, --system-instruction, --gen-kwargs and "
                        "--output-path are for --lm-eval tasks")
    started: list[str] = []

    def on_progress(text: str) -> None:  # called as each system starts on each benchmark
        started.append(text)
        progress.update(task, completed=len(started) - 1, description=f"evaluating {text}")

    ev = Evaluation(run_dir, model_dirs=list(model_dirs), samples=samples, judge_dir=judge_dir, method=method,
                    max_new_tokens=max_new_tokens, answer_backend=answer_backend, seed=seed, on_progress=on_progress)
    try:
        with _progress() as progress:
            task = progress.add_task("evaluating", total=(len(specs) + bool(lm)) * len(ev.systems))
            results = ev.run(list(specs)) if specs else {}
            if lm:
                samples_file = Path(json_out).with_name(f"{Path(json_out).stem}-samples.jsonl")
                results["lm_eval"] = lm.run(ev, samples_file, output_path)
            progress.update(task, completed=len(started))
            progress.remove_task(task)
        files = []
        if json_out:
            write_new(Path(json_out), json.dumps(results, indent=1))
            files = [Path(json_out)] + ([Path(results["lm_eval"][k]) for k in ("samples_file", "output_path")]
                                        if lm else [])
        ev.publish(results, files)  # hook acdc_evaluation_results: the tracking plugins log them
    finally:
        ev.close()
    if specs:
        console.print(results_table(results))
    if lm:
        report = results["lm_eval"]
        console.print(results_table(report, title="lm-eval tasks"))
        cache = report["cache"]
        console.print(f"lm-eval requests: {cache['fresh']} answered, {cache['from_cache']} from the cache "
                      f"({cache['backend_calls']} backend calls); samples written to {report['samples_file']}",
                      highlight=False)
    if lm:
        console.print(f"lm-eval results (lm-eval's format) written under {results['lm_eval']['output_path']}",
                      highlight=False)
    if json_out:
        console.print(f"results written to {json_out}", highlight=False)


def results_table(results: dict, title: str = "outside benchmarks") -> Table:
    """Coverage / majority vote / best-of-N per system and benchmark (``-`` where not defined)."""
    table = Table(title=f"{title} (judge: {Path(results['judge']).name}; cov / maj / best-of-N)")
    table.add_column("system")
    benches = results["benchmarks"]
    for name, b in benches.items():
        table.add_column(f"{name} ({b['n_items']})", justify="right")
    systems = next(iter(benches.values()))["systems"]
    for system in systems:
        cells = [benches[b]["systems"][system] for b in benches]
        table.add_row(system, *(" / ".join("-" if c[k] is None else f"{c[k]:.2f}"
                                           for k in ("coverage", "majority", "best_of_n")) for c in cells))
    return table


def _progress() -> TickingProgress:
    return TickingProgress(console=console, transient=True)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("model_id")
@click.argument("out_dir", type=click.Path(path_type=Path))
def export(run_dir, model_id, out_dir):
    """Write a model as a Hugging Face checkpoint (rebuilt from its recipes if needed)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise AcdcError(f"export target {out_dir} is a file, not a folder")
    store = RunStore.open(run_dir)
    try:
        config = store.config()
        if model_id not in {r["id"] for r in store.models()}:
            raise AcdcError(f"no model {model_id!r} in {run_dir}")
        with PluginContext(config) as plugins:
            _export(store, plugins.hook, config, model_id, out_dir)
    finally:
        store.close()
    console.print(f"exported {model_id} to {out_dir} (load with AutoModelForCausalLM.from_pretrained)")


def _export(store: RunStore, hook, config, model_id: str, out_dir: Path) -> None:
    """Every file of the checkpoint is written into a scratch folder inside ``out_dir``, then renamed into
    place: a failed export (a full disk) leaves ``out_dir`` as it was, and no file is ever written through
    (an existing file there that is a hard link to a seed's is replaced, not overwritten)."""
    import tempfile

    from ..models.lineage import SCRATCH_PREFIX, rebuild_weights, remove_stale_scratch
    from ..models.seed_resolution import resolve_seeds

    seeds, base_dir = resolve_seeds(hook, config.models)
    _refuse_seed_folder(out_dir, {**seeds, config.models.base: base_dir})
    made = missing_dirs(out_dir)
    target, scratch = out_dir / "model.safetensors", None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_scratch(out_dir)
        scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=out_dir))
        with _progress() as progress:
            task = progress.add_task(f"rebuilding {model_id} from its ancestry", total=None)
            rebuild_weights(store, model_id, hook=hook, base_file=base_dir / "model.safetensors",
                            out_file=scratch / "model.safetensors",
                            seed_files={spec: d / "model.safetensors" for spec, d in seeds.items()},
                            on_damaged=lambda mid, digest, problem: console.print(
                                f"warning: {problem}; {mid} is rebuilt without it", style="yellow",
                                highlight=False, markup=False),
                            on_built=lambda done, total: progress.update(task, completed=done, total=total))
            progress.remove_task(task)
        names = ["model.safetensors"]
        for f in sorted(base_dir.iterdir()):
            if f.is_file() and f.name != "model.safetensors":
                target = out_dir / f.name
                copy_new(f, scratch / f.name, name_target=target)
                names.append(f.name)
        for name in names:
            target = out_dir / name
            os.replace(scratch / name, target)
    except WriteFailed as exc:
        raise AcdcRuntimeError(f"cannot write {target}: {exc.strerror}; {out_dir} is left as it was") from None
    except OSError as exc:
        bad_path = exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)  # the path given, not the machine
        raise (AcdcError if bad_path else AcdcRuntimeError)(
            f"cannot write {target}: {exc.strerror or exc}; {out_dir} is left as it was") from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        remove_empty_dirs(made)  # a folder this export made stays only if the export is in it


def _refuse_seed_folder(out_dir: Path, dirs: dict[str, Path]) -> None:
    """One line if ``out_dir`` is the folder of a seed (or the base): an export never writes into it."""
    if not out_dir.is_dir():
        return
    for spec, d in dirs.items():
        with contextlib.suppress(OSError):
            if os.path.samefile(out_dir, d):
                raise AcdcError(f"export target {out_dir} is the folder of the seed {spec}; an export never "
                                "writes into a seed's folder: choose a new folder")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="HTML file to write (default: RUN_DIR/report.html).")
def report(run_dir, out):
    """Write a self-contained HTML report with plots of a run."""
    from .report import build_report

    quiet_libraries()
    RunStore.open(run_dir).close()  # not a run: said before anything about --out
    out = out or Path(run_dir) / "report.html"
    check_target(out, "--out")  # a directory, a missing or unwritable folder: said before the work
    page = build_report(run_dir)
    write_new(out, page)  # whole or not at all: a killed or failed report leaves no half page
    console.print(f"report written to {out}", highlight=False)
