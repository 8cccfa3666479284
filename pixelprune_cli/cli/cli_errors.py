"""How a command ends: one line and an exit code for every failure, never a traceback; signals; closed streams.

Exit codes: 0 every image done, 1 some images failed (the rest written),
2 usage error or no input could be read, 128 + N stopped by signal N after
cleaning up (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT), 141 the reader
of stdout went away before everything was written (a broken pipe).

One import is lazy: `atomic` (hashlib, storage), needed only once a signal
stops a run, so that `pixelprune --help` does not load it.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading

import click

from pixelprune_cli.errors import COMMAND_LINE, PixelpruneError, Terminated, broken_pipe, escape_controls
from pixelprune_cli.storage.urls import redact

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143  # 128 + SIGINT, SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose pipe closed


def fail(message: str, code: int = EXIT_USAGE):
    try:
        click.echo(f"pixelprune: error: {escape_controls(redact(message))}", err=True)  # no user:secret@ ever
    except OSError:  # stderr on a full disk or gone: the exit code is all that is left to say it
        pass
    sys.exit(code)


def tell(message: str) -> None:
    """One line on stderr. A stderr that cannot take it (2>/dev/full) loses the message, never the run:
    the exit code still says how it went, as with a closed stderr."""
    try:
        click.echo(redact(message), err=True)  # a URL's secret never, whatever the message was built from
    except OSError as exc:
        if broken_pipe(exc):
            raise
        try:  # what is left in its buffer would fail again at exit (and turn the exit code into 120)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        except (OSError, ValueError):
            pass


def handle_errors(fn):
    """Turn known failures into one-line messages and exit codes, never tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = _catch_stop_signals()
        naming = COMMAND_LINE.set(True)  # messages name flags (--overwrite), not Python parameters
        try:
            try:
                return fn(*args, **kwargs)
            except PixelpruneError as exc:  # converted where it happened, naming the file and the reason
                fail(str(exc), getattr(exc, "exit_code", EXIT_USAGE))
            except OSError as exc:
                behind = _interrupt_behind(exc)
                if behind is not None:  # the cleanup after a signal wrote to a terminal that hung up (EIO)
                    raise behind from None
                if _terminal_hung_up(exc):  # the hangup itself, a moment before its SIGHUP is handled
                    raise Terminated(signal.SIGHUP) from None
                if not broken_pipe(exc):
                    raise
                # The reader of our stdout went away (e.g. `| head`): what it wanted may be incomplete,
                # so this is no success. Further writes to stdout would fail again: send them nowhere.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                fail("standard output was closed by its reader before everything was written (broken pipe)",
                      EXIT_BROKEN_PIPE)
        except KeyboardInterrupt as exc:  # raised by the run, or by a signal handled while handling an error
            _stopped(exc)
        finally:
            COMMAND_LINE.reset(naming)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return wrapper


# Signals that stop a run the way Ctrl-C does: the output cleaned up, one line, exit 128 + N.
# SIGHUP is what a dropped ssh session or a closed terminal sends; SIGQUIT (Ctrl-\) would
# otherwise dump core and leave the run's temporary files and lock behind.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_STOPPED_BY: dict[int, str] = {signal.SIGHUP: "hung up (SIGHUP: the terminal or ssh session went away)",
               signal.SIGQUIT: "quit (SIGQUIT)"}


def _catch_stop_signals() -> dict:
    """Turn STOP_SIGNALS into Terminated; returns the handlers to put back.

    A signal the parent set to be ignored stays ignored: that is how `nohup`
    keeps a run alive across a hangup. Outside the main thread signals are left alone.
    """
    previous = {}
    for signum in STOP_SIGNALS:
        try:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread
            return {}
    if signal.getsignal(signal.SIGINT) is not None:  # left as it is, but put back after _stopped ignores it
        previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    return previous


def _stopped(exc: KeyboardInterrupt):
    """End a run a signal stopped: release what is still held, say so in one line, exit 128 + N."""
    from pixelprune_cli.storage.atomic import release_everything_held

    for other in (signal.SIGINT, *STOP_SIGNALS):  # a second signal must not cut the cleanup short
        try:
            signal.signal(other, signal.SIG_IGN)
        except ValueError:  # not the main thread
            break
    release_everything_held()  # what the signal caught before its cleanup was set up
    signum = exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)
    _say_last(f"pixelprune: {_STOPPED_BY.get(signum, 'interrupted')}; nothing partial was left under the output name")
    _exit_now(128 + signum)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The signal an error was raised while handling (its __context__ chain), if any."""
    seen = 0
    while exc.__context__ is not None and seen < 20:
        exc, seen = exc.__context__, seen + 1
        if isinstance(exc, KeyboardInterrupt):
            return exc
    return None


def _terminal_hung_up(exc: OSError) -> bool:
    """EIO, and stderr is a terminal that hung up (any write to it fails so, even an empty one)."""
    if exc.errno != errno.EIO:
        return False
    try:
        os.write(sys.stderr.fileno(), b"")
    except OSError as probe:
        return probe.errno == errno.EIO
    except (AttributeError, ValueError):  # no stderr at all
        return False
    return False


def _say_last(line: str) -> None:
    """A last line on stderr, which may be a terminal that hung up (EIO) or closed: never raises."""
    try:
        click.echo(line, err=True)
    except (OSError, ValueError, AttributeError):
        pass


def _exit_now(code: int):
    """Exit with code, even when a worker thread is stuck in a read that never returns.

    Outputs have been cleaned up by now; Python's own exit would wait for every
    worker thread, so with one still running the process ends here instead.
    """
    stuck = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if stuck:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more to say on it
                pass
        os._exit(code)
    sys.exit(code)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


CLOSED_AT_START: set[str] = set()  # the standard streams this process was started without ("stdout", ...)


def reopen_closed_streams() -> None:
    """Give every standard stream the process was started without (cron, systemd, `>&-`) /dev/null.

    Else the next file opened takes the free descriptor 1 or 2, and whatever
    writes there (ours or a library's) lands in it; and Python leaves
    sys.stdout or sys.stderr None, which printing the report would trip on.
    stdin stays None in Python, so reading `-` says it is closed.
    """
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        CLOSED_AT_START.add(name)
        if name != "stdin":
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False))  # noqa: SIM115 (lives as long as the process)


def escape_what_cannot_be_encoded() -> None:
    """Write a character stdout or stderr cannot encode (an ASCII or Latin-1 locale, PYTHONIOENCODING)
    as a visible escape (\\u2026), instead of failing the report after the output was written."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            reconfigure(errors="backslashreplace")
