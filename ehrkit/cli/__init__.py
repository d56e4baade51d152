"""The `ehrkit` command: every command group is registered here, in one visible place.

`main()` is the one boundary where library errors become messages and exit codes
(DESIGN.md section 5): 0 success (also when a pipe reader closes early), 1 data or runtime
error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Annotated, Optional

import typer

from ehrkit import __version__

# Every command group and command, in the order the top-level help lists them: the name and
# the module under ehrkit.cli that holds its typer app (a group) or its function (a command).
GROUPS = ("synth", "notes", "timeline")
COMMANDS = ("pretrain", "finetune", "multitask", "predict", "embed", "probe", "evaluate")


def _version(value: bool) -> None:
    if value:
        print(f"ehrkit {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Foundation models on electronic health records, as Unix-style commands."""


def build_app(names: tuple[str, ...] = GROUPS + COMMANDS) -> typer.Typer:
    """The typer app with the named groups and commands; only their modules are imported."""
    app = typer.Typer(
        name="ehrkit",
        help="Foundation models on electronic health records, as Unix-style commands.\n\n"
        "Commands read and write records (JSONL or Parquet) on stdin/stdout or files, so they "
        "pipe together. Run 'ehrkit COMMAND --help' for details and examples.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,  # tracebacks with locals would print patient data
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name in names:
        module = importlib.import_module(f"ehrkit.cli.{name}")
        if name in GROUPS:
            app.add_typer(module.app, name=name)
        else:
            app.command(name)(getattr(module, name))
    return app


def __getattr__(name: str):
    """`ehrkit.cli.app`, the whole app (docs and tests), built on first use."""
    if name == "app":
        globals()["app"] = whole = build_app()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_for(argv: list[str]):
    """The click command that runs `argv`: built for the one group or command named there.

    Building the click tree inspects every command's signature (about 0.08 s for all of them,
    a fifth of a short `notes clean` run), and importing every command module costs another
    0.01 s; a run needs only its own branch. Anything else (no name, --help at the top, a
    mistyped name) gets the whole tree, so the top-level help and the "No such command"
    message stay what they are."""
    name = next((a for a in argv if not a.startswith("-")), None)
    if name not in GROUPS + COMMANDS:
        return typer.main.get_command(build_app())
    return typer.main.get_command(build_app((name,)))


def _silence_stdout() -> None:
    """After a reader closed the pipe, point stdout at /dev/null so the final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _click_exceptions():
    """The click that typer runs on: typer >= 0.2x vendors its own copy as typer._click."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _broken_pipe(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code instead of exiting (used by main and tests)."""
    from ehrkit import log
    from ehrkit.errors import EXIT_DATA, EXIT_INTERRUPTED, EhrkitError

    click_errors = _click_exceptions()
    debug = os.environ.get("EHRKIT_DEBUG") == "1"
    try:
        argv = sys.argv[1:] if argv is None else argv
        result = command_for(argv).main(args=argv, prog_name="ehrkit", standalone_mode=False)
        sys.stdout.flush()
        if result == EXIT_INTERRUPTED:  # newer typer turns Ctrl-C into Exit(130) itself
            log.error("interrupted")
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except click_errors.ClickException as exc:  # usage errors: exit 2
        exc.show(file=sys.stderr)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        # click answers a closed pipe with exit 1; the contract says a closed pipe is success
        if _broken_pipe(exc.__context__):
            _silence_stdout()
            return 0
        raise
    except EhrkitError as exc:
        if debug:
            raise
        log.error(exc.message)
        if exc.hint:
            log.hint(exc.hint)
        return exc.exit_code
    except OSError as exc:
        if _broken_pipe(exc):
            _silence_stdout()
            return 0
        if debug:
            raise
        # strerror and the file name are safe; the rest of an OSError may carry data
        where = f"{exc.filename}: " if exc.filename else ""
        log.error(f"{where}{exc.strerror or type(exc).__name__}")
        return EXIT_DATA
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            raise
        # Only the type and the place: third-party messages can quote record content.
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        place = f" at {os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}" \
            if frame is not None else ""
        log.error(f"internal error ({type(exc).__name__}{place})")
        log.hint("rerun with EHRKIT_DEBUG=1 for the full traceback, and report it")
        return EXIT_DATA


def main() -> None:
    _exit(run())


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown, which frees every module and object one by one:
    0.05-0.1 s after a large run, a tenth of a short command in a pipeline. Everything a
    command writes is complete by now (outputs are closed and renamed); what teardown would
    still do for others, atexit handlers and the standard streams, is done here first."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader closed the pipe; the stream was closed
            pass
    os._exit(code)
