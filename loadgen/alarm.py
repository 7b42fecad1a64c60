"""One-shot wake-ups at an exact `time.perf_counter` moment, run by the event loop at its highest priority.

The loop's own timers wait whole milliseconds (epoll's timeout), so a timer wakes up to a millisecond
late; the open-loop dispatcher used to wake 1.2 ms early and busy-wait the rest, which spent a core's
slice on spinning and made the process the one the OS preempts next. On Linux a timerfd set to the
absolute CLOCK_MONOTONIC time (perf_counter's clock) is made readable by the kernel's high-resolution
timer at that moment; the loop watches it like a socket. Elsewhere (or where the timerfd cannot be made)
`LoopAlarm` keeps the loop's timer with the early wake-up.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Alarm", "LoopAlarm", "TimerFdAlarm", "make_alarm"]

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class Alarm(Protocol):
    """Calls its callback once, in the loop, at (or up to `early_s` before) the moment given to `at`."""

    early_s: float  # how far ahead of the moment the callback may come; the caller waits out the rest

    def at(self, when_s: float) -> None: ...

    def close(self) -> None: ...


class LoopAlarm:
    """The loop's own millisecond timer, woken `early_s` ahead to absorb its rounding."""

    early_s = 0.0012

    def __init__(self, loop: Any, callback: Callable[[], None], clock: Callable[[], float]) -> None:
        self._loop = loop
        self._callback = callback
        self._clock = clock
        self._timer: Any = None

    def at(self, when_s: float) -> None:
        self.close()
        self._loop.update_now()  # the timer counts from now, not from the loop's time cached before this
        self._timer = self._loop.timer(max(0.0, when_s - self.early_s - self._clock()), priority=self._loop.MAXPRI)
        self._timer.start(self._callback)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFdAlarm:
    """A Linux timerfd at an absolute CLOCK_MONOTONIC time, watched by the loop at its highest priority.

    `early_s` covers the wake-up path (kernel timer → epoll → loop → callback): 0.1–0.15 ms on a busy machine."""

    early_s = 0.00025

    def __init__(self, loop: Any, callback: Callable[[], None], libc: Any) -> None:
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        self._settime = libc.timerfd_settime
        self._spec = _Itimerspec()
        self._callback = callback
        self._watcher = loop.io(fd, 1, priority=loop.MAXPRI)
        self._watcher.start(self._on_readable)

    def at(self, when_s: float) -> None:
        ns = max(1, int((when_s - self.early_s) * 1e9))  # 0 would disarm it
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def _on_readable(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiry count; reading it clears the readiness
        except BlockingIOError:
            return
        self._callback()

    def close(self) -> None:
        if self._fd < 0:
            return
        self._watcher.stop()
        self._watcher.close()
        os.close(self._fd)
        self._fd = -1


def _timerfd_libc() -> Any:
    """libc with the timerfd calls, where perf_counter reads CLOCK_MONOTONIC; None otherwise."""
    if not sys.platform.startswith("linux"):
        return None
    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


def make_alarm(loop: Any, callback: Callable[[], None], clock: Callable[[], float] = time.perf_counter) -> Alarm:
    """A timerfd alarm for the perf_counter clock on Linux, else the loop's timer."""
    libc = _timerfd_libc() if clock is time.perf_counter else None
    if libc is not None:
        try:
            return TimerFdAlarm(loop, callback, libc)
        except OSError:
            pass
    return LoopAlarm(loop, callback, clock)
