"""Drive a batch: every item through analyse -> restore segments -> finish, on an executor.

The driver alone writes the state file. Executors run jobs: ``InProcessExecutor`` one at a time in
this process (the default), ``RayExecutor`` on Ray, with one ``RestoreWorker`` actor per GPU (or
``--workers`` of them on CPU) and the model-free ``finish`` step as plain CPU tasks. The driver
code is the same for both, so the in-process run is what the Ray run does, minus the parallelism.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import UsageError, VidrestoreError
from ..pipeline import Progress
from ..pipeline.segments import segment_path, starts_inside_shot
from ..resume import SegmentLedger, keeps_segments, remove_leftovers
from ..statusline import StatusLine, eta_text
from ..stopping import raise_if_stopped
from .state import JobState
from .worker import Item, ItemPlan, Remarks, RestoreWorker, SegmentDone, finish


@dataclass
class Job:
    kind: str  # analyse | segment | finish
    item: Item
    plan: ItemPlan | None = None
    index: int = 0
    frames: int = 0
    reused: int = 0  # finish: segments an earlier, interrupted run had finished
    remarks: Remarks = field(default_factory=Remarks)  # finish: the item's segments', added up

    def describe(self) -> str:
        what = f"segment {self.index + 1}/{len(self.plan.segments)}" if self.kind == "segment" else self.kind
        return f"{self.item.input.name}: {what}"


class Executor(Protocol):
    slots: int  # how many items to keep in flight

    def submit(self, job: Job) -> None: ...

    def next_done(self) -> tuple[Job, object]:
        """Block until a job ends; its result, or the exception it raised."""
        ...

    def workers(self) -> list[str]: ...

    def close(self) -> None: ...


def one_line(exc: BaseException) -> str:
    """The reason an item failed, on one line: our errors as they are, others with their type."""
    text = str(exc) if isinstance(exc, VidrestoreError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


class InProcessExecutor:
    """Runs the jobs in this process: restoring and finishing on the calling thread, one at a time
    and in the order they came, and, with ``overlap``, each item's analysis on a thread of its own,
    so that the next item is decoded, cut and its faces tracked while this one is restored and
    encoded (two items in flight, as Ray keeps one more item than it has actors). A finished
    analysis is answered first, so that its segments queue up behind the restoring item's.

    ``overlap`` defaults to on where the models run on an accelerator, whose host cores then have
    room for an analysis; on the CPU the model already takes every core, and three items of the
    shipped model on 2 cores took 104.5 s overlapped against 87.8 s one at a time (bench/batch.py).
    Without a model (``--model none``) it helps there too (1.51x against 1.70x the floor)."""

    def __init__(self, device: str, progress: BatchProgress | None = None, overlap: bool | None = None):
        self.worker = RestoreWorker(device)
        self.queue: deque[Job] = deque()  # the calling thread's jobs, oldest first
        self.analysing: dict[Future, Job] = {}
        overlap = self.worker.device.type != "cpu" if overlap is None else overlap
        self.lane = ThreadPoolExecutor(1, thread_name_prefix="vidrestore-analyse") if overlap else None
        self.slots = 2 if overlap else 1  # how many items to keep in flight
        self.progress = progress
        self.current = "idle"

    def submit(self, job: Job) -> None:
        if job.kind == "analyse" and self.lane is not None:
            self.analysing[self.lane.submit(self._run, job)] = job
        else:
            self.queue.append(job)

    def next_done(self) -> tuple[Job, object]:
        answered = next((f for f in self.analysing if f.done()), None)
        if answered is None and not self.queue:
            answered = next(iter(wait(self.analysing, return_when=FIRST_COMPLETED).done))
        if answered is not None:
            return self.analysing.pop(answered), answered.result()  # re-raises an interruption
        job = self.queue.popleft()
        self.current = job.describe()
        if self.progress:
            self.progress.workers = self.workers()
            self.progress.render(force=True)
        try:
            return job, self._run(job, self.progress.live_frames if self.progress else None)
        finally:
            self.current = "idle"
            if self.progress:
                self.progress.live = 0

    def _run(self, job: Job, live: Progress | None = None) -> object:
        """The job's result, or the exception it raised (an interruption is raised)."""
        try:
            if job.kind == "analyse":
                return self.worker.analyse(job.item)
            if job.kind == "segment":
                return self.worker.restore_segment(job.plan, job.index, live)
            return finish(job.plan, job.frames, job.reused, job.remarks)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - one item's failure must not stop the batch
            return exc

    def workers(self) -> list[str]:
        analysing = [f"{'analysing' if f.running() else 'next'}: {job.item.input.name}" for f, job in self.analysing.items()]
        return [f"{self.worker.device}: {self.current}", *analysing]

    def close(self) -> None:
        """Wait for an analysis still running: after a stop signal it ends at its next checkpoint."""
        if self.lane is not None:
            self.lane.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Jobs as Ray actor calls and tasks. ``address``: None starts a local Ray; "auto" or HOST:PORT
    joins a running cluster. ``workers``: restorer actors (default: one per GPU, or 1 without GPUs)."""

    def __init__(self, address: str | None, workers: int | None, device: str):
        try:
            import ray
        except ImportError as exc:
            raise UsageError("--ray needs Ray: pip install 'vidrestore[ray]'") from exc
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = workers or max(1, gpus)
        actor = ray.remote(RestoreWorker).options(num_gpus=1 if gpus else 0, num_cpus=1, max_restarts=3, max_task_retries=0)
        self.actors = [actor.remote(device) for _ in range(count)]
        # Joining and remuxing copies packets (I/O, no decoding): it reserves no core, so it can
        # always run beside actors that hold every CPU of a small machine.
        self.finish_task = ray.remote(num_cpus=0, max_retries=0)(finish)
        self.idle = list(range(count))
        self.waiting: deque[Job] = deque()
        self.running: dict = {}  # ObjectRef -> (job, actor index or None)
        self.slots = count + 1  # one more item in flight keeps the actors busy while another item finishes

    def submit(self, job: Job) -> None:
        if job.kind == "finish":
            self.running[self.finish_task.remote(job.plan, job.frames, job.reused, job.remarks)] = (job, None)
        else:
            self.waiting.append(job)
            self._dispatch()

    def _dispatch(self) -> None:
        while self.idle and self.waiting:
            index, job = self.idle.pop(0), self.waiting.popleft()
            actor = self.actors[index]
            ref = actor.analyse.remote(job.item) if job.kind == "analyse" else actor.restore_segment.remote(job.plan, job.index)
            self.running[ref] = (job, index)

    def next_done(self) -> tuple[Job, object]:
        ready, _ = self.ray.wait(list(self.running), num_returns=1)
        job, index = self.running.pop(ready[0])
        if index is not None:
            self.idle.append(index)
        try:
            result = self.ray.get(ready[0])
        except self.ray.exceptions.RayTaskError as exc:
            result = exc.cause if isinstance(exc.cause, BaseException) else exc
        except self.ray.exceptions.RayError as exc:  # a worker died: this job fails, the actor restarts
            result = exc
        self._dispatch()
        return job, result

    def workers(self) -> list[str]:
        busy = {index: job.describe() for job, index in self.running.values() if index is not None}
        return [f"actor {i}: {busy.get(i, 'idle')}" for i in range(len(self.actors))]

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


class BatchProgress:
    """One status line on stderr: items, frames, fps, ETA, and what each worker does."""

    def __init__(self, items: int, frames: int, quiet: bool):
        self.items, self.frames, self.quiet = items, frames, quiet
        self.done = self.failed = self.frames_done = self.live = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.workers: list[str] = []
        self.status = StatusLine()

    def live_frames(self, stage: str, done: int, total: int, faces: int) -> None:
        self.live = done
        self.render()

    def render(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.quiet or (not force and now - self.last < 0.5):
            return
        self.last = now
        frames = self.frames_done + self.live
        fps = frames / max(1e-6, now - self.t0)
        finished = self.done + self.failed >= self.items
        total = frames if finished else self.frames  # until then an estimate, or 0 when nothing tells
        eta = eta_text(0 if finished else max(0, total - frames) / fps if fps > 0 and total else None)
        line = (f"items {self.done + self.failed}/{self.items} (ok {self.done}, failed {self.failed})  "
                f"frames {frames}{f'/{total}' if total or finished else ''}  {fps:5.1f} fps  ETA {eta:>6s}  | "
                + "; ".join(self.workers))
        self.status.show(line[:200].ljust(120), now, settled=force)

    def close(self) -> None:
        if not self.quiet:
            self.render(force=True)
            self.status.end()


@dataclass
class _Live:
    item: Item
    outstanding: int = 1
    segments_left: int = 0
    frames: int = 0
    reused: int = 0
    remarks: Remarks = field(default_factory=Remarks)
    error: str | None = None
    keeps_segments: bool = False  # the error leaves the finished segments sound (a full disk)
    started: float = field(default_factory=time.time)
    waiting: dict[int, Job] = field(default_factory=dict)  # segments that go on with a shot, by index: each waits for the one before


def run_batch(items: list[Item], state: JobState, executor: Executor, max_attempts: int,
              progress: BatchProgress) -> None:
    """Run every item that is not already done with the same fingerprint; record each outcome."""
    queue = deque(items)
    live: dict = {}

    # An item is in ``live`` for as long as its row may say running, so that an interrupt landing
    # between two statements still finds it and puts it back to pending.
    def start(item: Item) -> None:
        live[item.output] = _Live(item)
        _clear_leftovers(item, _ledger(item).files())
        state.start(item.output)
        executor.submit(Job("analyse", item))

    def settle(run: _Live) -> None:
        kept = _ledger(run.item).files() if run.keeps_segments else []
        _clear_leftovers(run.item, kept)
        if not kept:
            _ledger(run.item).discard()  # the item starts over
        state.fail(run.item.output, run.error, time.time() - run.started)
        del live[run.item.output]
        if state.get(run.item.output).attempts < max_attempts:
            queue.append(run.item)
        else:
            progress.failed += 1

    try:
        while queue or live:
            while queue and len(live) < executor.slots:
                start(queue.popleft())
            progress.workers = executor.workers()
            progress.render()
            job, outcome = executor.next_done()
            raise_if_stopped()  # before the outcome is recorded: a lost stop may have failed the job
            run = live[job.item.output]
            run.outstanding -= 1
            if isinstance(outcome, BaseException):
                if run.error is None:
                    run.error, run.keeps_segments = one_line(outcome), keeps_segments(outcome)
            else:
                if job.kind == "segment":  # recorded even when another segment failed: a retry may reuse it
                    _ledger(run.item).record(segment_path(run.item.output, job.index), job.plan.segments[job.index], outcome.frames,
                                             job.plan.item.options.dtype, outcome.carry, run.item.preview_part(job.index))
                if run.error is None:
                    _advance(job, outcome, run, executor, state, progress)
            if run.error is not None and run.outstanding == 0:
                settle(run)
            elif job.kind == "finish" and run.error is None:
                del live[job.item.output]
    except BaseException:
        for output, run in list(live.items()):
            state.release(output)
            _clear_leftovers(run.item, _ledger(run.item).files())
        raise
    finally:
        progress.workers = executor.workers()
        progress.close()


def _ledger(item: Item) -> SegmentLedger:
    return SegmentLedger(item.output, item.fingerprint)


def _clear_leftovers(item: Item, keep: list[Path]) -> None:
    """Remove what an earlier run of ``item`` left beside its output and its preview, but ``keep``."""
    for target in (item.output, item.preview):
        if target is not None:
            remove_leftovers(target, keep=keep)


def _advance(job: Job, outcome: object, run: _Live, executor: Executor, state: JobState, progress: BatchProgress) -> None:
    """Submit what follows a job that succeeded."""
    if job.kind == "analyse":
        plan: ItemPlan = outcome
        if not plan.segments:
            progress.frames_done += plan.analysis.frames
        finished = _ledger(run.item).finished()
        todo = []
        for index, segment in enumerate(plan.segments):
            done = finished.get(segment_path(run.item.output, index))
            if done is not None and done.serves(segment, run.item.preview_part(index)):  # an interrupted run finished it: not restored again
                run.frames += done.written
                run.reused += 1
                progress.frames = max(0, progress.frames - done.written)  # work left out, as a skipped item's is: the rate and ETA stay this run's
            else:
                todo.append(Job("segment", run.item, plan, index))
        run.segments_left = len(todo)
        # A segment that goes on with a shot needs the state the one before it hands on: when that
        # one is restored too, it waits for it (segments of other shots may run at once elsewhere).
        restoring = {j.index for j in todo}
        run.waiting = {j.index: j for j in todo
                       if j.index - 1 in restoring and starts_inside_shot(plan.analysis, plan.segments[j.index])}
        jobs = [j for j in todo if j.index not in run.waiting] or [Job("finish", run.item, plan, frames=run.frames, reused=run.reused)]
        run.outstanding += len(jobs)
        for j in jobs:
            executor.submit(j)
    elif job.kind == "segment":
        done: SegmentDone = outcome
        run.frames += done.frames
        run.remarks += done.remarks
        progress.frames_done += done.frames
        run.segments_left -= 1
        if (following := run.waiting.pop(job.index + 1, None)) is not None:
            run.outstanding += 1
            executor.submit(following)
        if run.segments_left == 0:
            run.outstanding += 1
            executor.submit(Job("finish", run.item, job.plan, frames=run.frames, reused=run.reused, remarks=run.remarks))
    else:
        _ledger(run.item).discard()
        state.finish(run.item.output, outcome)
        progress.done += 1
