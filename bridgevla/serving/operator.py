"""The person at the robot: a stop key, yes/no confirmation before a motion, and key presses (demo keyframes).

:class:`TerminalOperator` reads lines from the terminal on a background thread: ``q`` (or Ctrl-C, or end of input)
requests a stop; during demo recording ``k`` marks a keyframe, ``g`` toggles the gripper, ``d`` ends the demo.
The hardware emergency stop stays the real stop: this one only stops sending new motions (franky itself stops the
current motion on Ctrl-C). :class:`ScriptedOperator` is the same interface without a person (simulation, tests).
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Protocol, TextIO


class Operator(Protocol):
    def stop_requested(self) -> bool: ...

    def confirm(self, plan: str) -> bool: ...

    def show(self, text: str) -> None: ...

    def poll_key(self) -> str | None: ...


class TerminalOperator:
    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None, handle_sigint: bool = True) -> None:
        self._in, self._out = stdin or sys.stdin, stdout or sys.stdout
        self._stop = threading.Event()
        self._lines: queue.Queue[str] = queue.Queue()
        self._answers: queue.Queue[str] = queue.Queue()
        self._awaiting = threading.Event()
        self._previous_sigint: Callable | None = None
        if handle_sigint and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        threading.Thread(target=self._read, name="operator-keys", daemon=True).start()

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self._stop.is_set():  # a second Ctrl-C: the default behaviour (KeyboardInterrupt)
            raise KeyboardInterrupt
        self._stop.set()
        self.show("stop requested (Ctrl-C again to abort at once)")

    def _read(self) -> None:
        for line in self._in:
            text = line.strip().lower()
            if self._awaiting.is_set():
                self._answers.put(text)
            elif text in ("q", "quit", "stop"):
                self._stop.set()
            else:
                self._lines.put(text)
        self._stop.set()  # end of input: nobody can confirm or stop any more, so stop

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def confirm(self, plan: str) -> bool:
        self.show(f"{plan}\nexecute? [y/N, q = stop] ")
        self._awaiting.set()
        try:
            while not self._stop.is_set():
                try:
                    answer = self._answers.get(timeout=0.2)
                except queue.Empty:
                    continue
                if answer in ("q", "quit", "stop"):
                    self._stop.set()
                    return False
                return answer in ("y", "yes")
            return False
        finally:
            self._awaiting.clear()

    def show(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def poll_key(self) -> str | None:
        try:
            return self._lines.get_nowait()[:1] or None
        except queue.Empty:
            return None

    def close(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)


class ScriptedOperator:
    """No person: confirms with ``answers`` (default yes), presses ``keys[tick]`` on the tick-th poll, and requests a
    stop after ``stop_after`` stop checks (None: never). Everything shown is kept in ``shown``."""

    def __init__(self, answers: list[bool] | None = None, keys: dict[int, str] | None = None,
                 stop_after: int | None = None) -> None:
        self.answers = list(answers) if answers is not None else None
        self.keys = dict(keys or {})
        self.stop_after = stop_after
        self.shown: list[str] = []
        self.confirmations: list[str] = []
        self._checks = 0
        self._polls = 0

    def stop_requested(self) -> bool:
        self._checks += 1
        return self.stop_after is not None and self._checks > self.stop_after

    def confirm(self, plan: str) -> bool:
        self.confirmations.append(plan)
        return True if self.answers is None else (self.answers.pop(0) if self.answers else False)

    def show(self, text: str) -> None:
        self.shown.append(text)

    def poll_key(self) -> str | None:
        key = self.keys.get(self._polls)
        self._polls += 1
        return key

    def close(self) -> None:
        pass
