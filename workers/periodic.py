"""The periodic work: one loop per step of `workers.jobs.STEPS`, each on its own schedule,
with its own time limit and its own failure count.

Every `tourline worker` process runs every loop (and, without Redis, so does every API
process). The steps claim the rows they work on, so loops of one step in several
processes share its backlog: more workers drain it faster. A step that hangs (an SMTP
server that does not answer) holds up its own loop only, and the loops need no Redis:
while Redis is away, holds still expire and mail still goes out.

Stopping (SIGTERM to a worker, or the API process shutting down) starts no new run and no
further batch, and lets the batches in flight finish, for up to STOP_GRACE_SECONDS: a mail
being sent is recorded as sent rather than left claimed until its lease runs out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from app.core.settings import Settings
from workers.jobs import Step, run_step, steps_for

logger = logging.getLogger("tourline.jobs")

# How long a stop waits for the batches in flight before cancelling them: enough for a
# message or a webhook in flight to finish (a slow SMTP server takes seconds), and well
# inside what supervisors allow for a stop (Kubernetes 30 s, systemd 90 s) and the API's
# graceful shutdown.
STOP_GRACE_SECONDS = 10.0


class Periodic:
    def __init__(self, settings: Settings, steps: list[Step] | None = None) -> None:
        self.settings = settings
        self.steps = steps_for(settings) if steps is None else steps
        self.tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self.tasks = [
            asyncio.create_task(self._loop(step), name=f"periodic:{step.name}")
            for step in self.steps
        ]

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Start nothing new; give the batches in flight up to `grace` seconds to finish,
        then cancel them (at once if this is cancelled)."""
        self._stopping.set()
        tasks, self.tasks = self.tasks, []
        if not tasks:
            return
        try:
            _done, unfinished = await asyncio.wait(tasks, timeout=grace)
            if unfinished:
                logger.warning(
                    "periodic steps cancelled after %.0f s of stopping: %s",
                    grace, ", ".join(task.get_name() for task in unfinished),
                )  # fmt: skip
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, step: Step) -> None:
        # Once stopping, a drain asks for no further batch.
        step = dataclasses.replace(step, run=self._unless_stopping(step.run))
        while not self._stopping.is_set():
            try:
                await run_step(step, self.settings)
            except Exception:  # run_step counts its failures; this keeps the loop alive
                logger.exception("periodic step %s failed", step.name)
            try:
                pause = step.every * random.uniform(0.9, 1.1)
                await asyncio.wait_for(self._stopping.wait(), pause)
            except TimeoutError:
                pass

    def _unless_stopping(self, run: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
        async def unless_stopping(*args: Any, **kwargs: Any) -> int:
            return 0 if self._stopping.is_set() else await run(*args, **kwargs)

        return unless_stopping
