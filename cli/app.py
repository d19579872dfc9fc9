"""The command-line application's frame: every command runs inside :func:`friendly_errors`, which turns
a :class:`~codec.errors.DiveqError` into a one-line ``error: ...`` and its exit code, Ctrl-C into exit
130, SIGTERM / SIGHUP into 143 / 129 (after the same cleanup), and a missing ``[train]`` extra into
a one-line hint to install it. :class:`DiveqApp` wraps each command it registers."""

from __future__ import annotations

import functools
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from codec.errors import DiveqError, DiveqWarning, Terminated, printable

#: Modules that add commands with ``register(app)``; a module that does not exist yet is skipped.
COMMAND_MODULES = ("cli.train", "cli.evaluate", "cli.compare", "cli.corpus")
#: Exit code after Ctrl-C (128 + SIGINT), as shells use.
INTERRUPTED_EXIT_CODE = 130
#: Exit code when standard output's reader went away (128 + SIGPIPE), as for tools killed by SIGPIPE.
BROKEN_PIPE_EXIT_CODE = 141
#: Signals that end a command like Ctrl-C does (cleanup, one error line, exit 128 + the signal).
TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

#: Deprecation notices from torch/DAC internals that users cannot act on; hidden while a command runs.
QUIET_WARNINGS = (r"`torch\.jit\.script` is deprecated", r"`torch\.nn\.utils\.weight_norm` is deprecated")

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` as one line on stderr (control and bidi characters escaped); return
    the Exit to raise."""
    text = printable(" ".join(str(message).split())) or "unknown error"
    print(f"error: {text}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def _show_warning(show: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing DiveqWarning as one ``warning: ...`` line on stderr."""

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DiveqWarning):
            print(f"warning: {printable(' '.join(str(message).split()))}", file=sys.stderr, flush=True)
        else:
            show(message, category, *args, **kwargs)

    return showwarning


@contextmanager
def _terminate_on_signals() -> Iterator[None]:
    """While a command runs, SIGTERM / SIGHUP raise :class:`Terminated` in the main thread, so that
    atomic writes clean up as after Ctrl-C; later copies of the signal are ignored during the cleanup.
    Handlers installed inside (e.g. training's stop request) take precedence while they are active."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        for sig in TERMINATING_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum, signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def friendly_errors(fn: F) -> F:
    """Wrap a command: DiveqError -> one-line message + its exit code; Ctrl-C -> exit 130; SIGTERM /
    SIGHUP -> 143 / 129; DiveqWarning -> one ``warning:`` line; known third-party deprecation warnings
    hidden (only while the command runs)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings(), _terminate_on_signals():
                for pattern in QUIET_WARNINGS:
                    warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
                warnings.simplefilter("always", DiveqWarning)
                warnings.showwarning = _show_warning(warnings.showwarning)
                result = fn(*args, **kwargs)
                from codec.io.directout import flush_stdout

                flush_stdout()  # a closed pipe (``info x.dvq | head -1``) is reported here
                return result
        except BrokenPipeError:
            from codec.io.fileio import silence_stdout

            silence_stdout()  # the reader has all it wanted: exit quietly, as after SIGPIPE
            raise typer.Exit(BROKEN_PIPE_EXIT_CODE) from None
        except DiveqError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except ModuleNotFoundError as exc:  # a [train] module behind a lazy import (e.g. an STE model)
            from codec.extras import as_missing_extras

            missing = as_missing_extras(exc, "this command")
            if missing is None:
                raise
            raise _fail(str(missing), missing.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", INTERRUPTED_EXIT_CODE) from None
        except Terminated as exc:
            raise _fail(f"terminated by {exc}", exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


class DiveqApp(typer.Typer):
    """A Typer whose commands (also those other modules register) report DiveqError in one line."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(friendly_errors(fn))
            return fn

        return decorator

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except DiveqError as exc:  # raised outside a wrapped command (e.g. a sub-app's callback)
            _fail(str(exc), exc.exit_code)
            sys.exit(exc.exit_code)



def register_command_modules(target: typer.Typer, names: tuple[str, ...] = COMMAND_MODULES) -> None:
    """Import each module in ``names`` and call its ``register(target)``; skip modules that do not
    exist (an ImportError from inside an existing module is raised)."""
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        register = getattr(module, "register", None)
        if callable(register):
            register(target)
