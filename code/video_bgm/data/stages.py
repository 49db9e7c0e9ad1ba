"""Running the stages of dataset preparation: resumable results, and tasks on processes or on Ray.

Each stage's result for one item (a source, a clip) is a small JSON file under ``<out>/work/<stage>/``,
named by a hash of everything it depends on (the source's content digest, the clip's span, the stage's
settings) and written atomically after the item's files are complete. A rerun finds them and does
nothing; a run killed at any moment loses at most the items in progress, and resumes to the same result.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from ..outputs import write_atomic


def key_of(*parts) -> str:
    """A stable name for a stage result: the hash of its inputs (JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class Store:
    """Stage results under ``<out>/work``: ``get`` / ``put`` of JSON values by (stage, key)."""

    def __init__(self, out: str | os.PathLike):
        self.root = Path(out) / "work"

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.json"

    def get(self, stage: str, key: str) -> dict | None:
        path = self.path(stage, key)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # cannot happen with atomic writes, unless edited by hand: redo it
            return None

    def put(self, stage: str, key: str, value: dict) -> dict:
        path = self.path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(value, sort_keys=True)
        write_atomic(path, text + "\n")
        return json.loads(text)  # what ``get`` will return: the same keys in the same order


class Runner:
    """Maps a task over items: in this process (``workers`` 1), in worker processes, or on Ray.

    Results come back in the order of the items whatever the order they finish in, so the manifest
    does not depend on the number of workers.
    """

    def __init__(self, workers: int = 1, ray_address: str | None = None, show_progress: bool = True,
                 threads: int | None = None):
        self.workers, self.ray_address, self.show_progress = workers, ray_address, show_progress
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)  # per worker process
        self.seconds: dict[str, float] = {}  # wall time per stage
        self._pool = None
        self._ray = None
        if ray_address:
            self._ray = _connect_ray(ray_address)

    def map(self, task: Callable, items: list, desc: str, unit: str = "clip",
            weights: Iterable[int] | None = None) -> list:
        """``[task(item) for item in items]``, with a progress bar (``weights``: units per item)."""
        weights = list(weights) if weights is not None else [1] * len(items)
        bar = tqdm(total=sum(weights), desc=f"{desc:>10}", unit=unit, disable=not self.show_progress or not items,
                   file=sys.stderr, dynamic_ncols=True)
        results: list = [None] * len(items)
        start = time.perf_counter()
        try:
            for i, result in self._run(task, items):
                results[i] = result
                bar.update(weights[i])
        finally:
            bar.close()
            self.seconds[desc] = self.seconds.get(desc, 0.0) + time.perf_counter() - start
        return results

    def _run(self, task, items):
        if self._ray is not None:
            ray = self._ray
            remote = ray.remote(task)
            refs = {remote.remote(item): i for i, item in enumerate(items)}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield refs[ref], ray.get(ref)
            return
        if self.workers <= 1:
            for i, item in enumerate(items):
                yield i, task(item)
            return
        if self._pool is None:
            import multiprocessing

            # spawn: torch and FFmpeg threads do not survive fork
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=torch_threads, initargs=(self.threads,))
        futures = {self._pool.submit(task, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def torch_threads(threads: int) -> None:
    """A worker process's torch threads: its share of the cores by default (torch would take them
    all in each)."""
    import torch

    torch.set_num_threads(threads)


def _connect_ray(address: str):
    try:
        import ray
    except ImportError:
        from ..errors import UserInputError

        raise UserInputError("--ray: the ray package is not installed (pip install 'video-to-music[ray]')") from None
    if not ray.is_initialized():
        # Workers import video_bgm as this process does (a source checkout via PYTHONPATH included).
        env = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}} if os.environ.get("PYTHONPATH") else None
        ray.init(address=None if address == "local" else address, runtime_env=env,
                 log_to_driver=False, include_dashboard=False)
    return ray
