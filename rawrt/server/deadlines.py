"""Timeouts as deadlines: each connection stores when its current wait must end, and the server's one reaper
task (:meth:`rawrt.server.Server._reap`) cancels the waits whose deadline passed.

A timer per wait (``asyncio.timeout()``) would be scheduled and cancelled on every read of every request; a
deadline is a float stored on the connection (docs/topics/performance.md). The price is precision: a
timeout fires up to one reaper tick late.

The reaper interrupts a wait by cancelling the connection's task. The task is not being cancelled, though:
it must go on (answer 408, or close quietly). :meth:`Deadline.cancelled_by_deadline` is the one place that
tells such a cancellation from a real one and takes it back; the task then raises ``TimeoutError`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Deadline", "withdraw_cancellation"]

T = TypeVar("T")


def withdraw_cancellation() -> None:
    """Take back the cancellation that interrupted the current task, which the server made itself (the
    reaper's deadline, the disconnect watcher, a shutdown ending a stream) to stop one ``await``, not the
    task.

    Without it the task would count as still being cancelled (``Task.cancelling()``, Python 3.11+), and
    ``asyncio.timeout()`` blocks in the app's code further on would misread their own timeouts.
    """
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):  # Python 3.10 has no uncancel (nor cancelling)
        task.uncancel()


class Deadline:
    """The deadline of a connection's current wait (a mixin of :class:`~rawrt.server.ServerConnection`)."""

    #: Loop time at which the current wait times out (0: no bounded wait in progress). Read by the reaper.
    deadline: float
    #: The connection's task, which the reaper cancels.
    task: asyncio.Task[None] | None
    #: The reaper cancelled the task (see :meth:`cancelled_by_deadline`).
    timed_out: bool

    def time_out(self) -> None:
        """Called by the reaper when :attr:`deadline` has passed: interrupt the bounded wait."""
        self.deadline = 0.0
        if self.task is not None and not self.task.done():
            self.timed_out = True
            self.task.cancel()

    def cancelled_by_deadline(self) -> bool:
        """In an ``except asyncio.CancelledError:`` around a bounded wait: whether the reaper cancelled it.

        If so, the cancellation is withdrawn, and the caller raises ``TimeoutError`` in its place; if not,
        the caller re-raises the ``CancelledError`` (a shutdown, or the app cancelling).
        """
        if not self.timed_out:
            return False
        self.timed_out = False
        withdraw_cancellation()
        return True

    async def bounded(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await ``awaitable``, for at most ``timeout`` seconds (give or take a reaper tick).

        Raises:
            TimeoutError: the deadline passed first.
        """
        # The event loop's clock, which the reaper reads too (Server.start sets Server.loop_time to it).
        self.deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.cancelled_by_deadline():
                raise TimeoutError from None
            raise
        finally:
            self.deadline = 0.0
