"""The periodic work: one loop per step of `workers.jobs.STEPS`, each on its own schedule,
with its own time limit and its own failure count.

Every `tourline worker` process runs every loop (and, without Redis, so does every API
process). The steps claim the rows they work on, so loops of one step in several
processes share its backlog: more workers drain it faster. A step that hangs (an SMTP
server that does not answer) holds up its own loop only, and the loops need no Redis:
while Redis is away, holds still expire and mail still goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from app.core.settings import Settings
from workers.jobs import Step, run_step, steps_for

logger = logging.getLogger("tourline.jobs")


class Periodic:
    def __init__(self, settings: Settings, steps: list[Step] | None = None) -> None:
        self.settings = settings
        self.steps = steps_for(settings) if steps is None else steps
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._loop(step), name=f"periodic:{step.name}")
            for step in self.steps
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []

    async def _loop(self, step: Step) -> None:
        while True:
            try:
                await run_step(step, self.settings)
            except Exception:  # run_step counts its failures; this keeps the loop alive
                logger.exception("periodic step %s failed", step.name)
            await asyncio.sleep(step.every * random.uniform(0.9, 1.1))
