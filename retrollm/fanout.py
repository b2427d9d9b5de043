"""Shard jobs fanned out as Ray tasks, or run one after another in this process.

A corpus stage cut into shards (docs/design.md §11) has one job per shard: a function of
plain arguments that writes its shard folder and returns a small summary. With more than
one job and `ray.enabled`, each job is a Ray task (a local Ray sized by `num_cpus` and
`object_store_mb`, or the cluster at `address`); the input every job shares is put in the
object store once, and results are collected with `ray.wait` as they finish. One job, or
`enabled: false`, runs in-process. Either way the folders written are the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field
from tqdm.auto import tqdm

from retrollm.settings import PARAMS_FILE, StageParams, load_params

T = TypeVar("T")
# The project root: a local Ray's workers import the job functions from this checkout
# (a temporary copy under test included), not from wherever the package is installed.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class RayParams(StageParams):
    """`ray` in params.yaml. It changes no output (the shards are the same bytes either
    way), so no stage tracks it."""

    enabled: bool = Field(True, description="false: shard jobs run one after another here.")
    address: str | None = Field(
        None,
        description="null: start a local Ray for the stage; 'auto' or 'ray://host:port': join "
        "that cluster (its nodes need this project installed).",
    )
    num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray (this machine's cores).")
    object_store_mb: int = Field(
        512, ge=80, description="Object store of the local Ray, MB (shared inputs only)."
    )
    cpus_per_job: float = Field(1.0, gt=0, description="CPUs Ray reserves for one shard job.")
    memory_per_job_mb: int | None = Field(
        None,
        ge=1,
        description="Memory Ray reserves for one shard job, MB (null: none), so a node runs "
        "only as many jobs as fit.",
    )


def load_ray_params(path: Path = PARAMS_FILE) -> RayParams:
    return load_params("ray", RayParams, path)


def run_jobs(
    job: Callable[..., T],
    calls: Sequence[dict[str, Any]],
    ray_params: RayParams,
    shared: dict[str, Any] | None = None,
    desc: str = "shards",
) -> list[T]:
    """`job(**call, **shared)` for every call, results in call order."""
    shared = shared or {}
    if len(calls) <= 1 or not ray_params.enabled:
        return [job(**call, **shared) for call in tqdm(calls, desc=desc, unit="shard")]
    return _run_on_ray(job, calls, ray_params, shared, desc)


def _run_on_ray(
    job: Callable[..., T],
    calls: Sequence[dict[str, Any]],
    ray_params: RayParams,
    shared: dict[str, Any],
    desc: str,
) -> list[T]:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        init_ray(ray_params)
    try:
        shared_ref = ray.put(shared)  # one copy in the object store, read by every task
        options: dict[str, Any] = {"num_cpus": ray_params.cpus_per_job, "max_retries": 0}
        if ray_params.memory_per_job_mb is not None:
            options["memory"] = ray_params.memory_per_job_mb * 2**20
        task = ray.remote(_call_with_shared).options(**options)
        pending = {task.remote(job, call, shared_ref): n for n, call in enumerate(calls)}
        results: list[Any] = [None] * len(calls)
        try:
            with tqdm(total=len(calls), desc=f"{desc} (ray)", unit="shard") as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for ref in done:
                        results[pending.pop(ref)] = ray.get(ref)
                        bar.update(1)
        finally:
            # A failed job fails the stage: the others must not write on into its folder.
            for ref in pending:
                ray.cancel(ref, force=True)
        return results
    finally:
        if started_here:
            ray.shutdown()


def _call_with_shared(job: Callable[..., T], call: dict[str, Any], shared: dict[str, Any]) -> T:
    # Ray resolves a top-level ObjectRef argument, so `shared` arrives as the dict itself.
    return job(**call, **shared)


def init_ray(params: RayParams) -> None:
    """Join the cluster at `address`, or start a local Ray sized by the params."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a pipeline run reports nowhere
    if params.address is not None:
        ray.init(address=params.address, log_to_driver=True)
        return
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(
        address="local",  # never a cluster found through RAY_ADDRESS or an earlier `ray start`
        num_cpus=params.num_cpus,
        object_store_memory=params.object_store_mb * 2**20,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
        log_to_driver=True,
    )
