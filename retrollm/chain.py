"""Which artifact was made from which: the checks that tie a reader's inputs together.

Document numbers are what artifacts exchange: document i of the index, of SPLADE's
rankings, of the token offsets and of the corpus must be one and the same document. A
count cannot show that (the same documents in another order have the same count), but
manifests can: each records the fingerprint of every input it was made from, and a
fingerprint covers the sha256 of every file (docs/design.md §8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrollm.artifacts import MANIFEST, ArtifactError, read_manifest, verify_files
from schemas.manifest import InputRef, Manifest


def made_from(
    artifact: Path, manifest: Manifest, key: str, source: Path, source_manifest: Manifest
) -> None:
    """Refuse `artifact` unless its manifest names `source` (as input `key`) as it is now."""
    ref = manifest.inputs.get(key)
    if ref is None or ref.fingerprint != source_manifest.fingerprint:
        made = "no recorded input" if ref is None else f"{key} {ref.fingerprint[:12]}"
        raise ArtifactError(
            f"{artifact}: made from {made}, but {source} holds {key} "
            f"{source_manifest.fingerprint[:12]}; rebuild {artifact} from it"
        )


def same_tokenizer(artifact: Path, manifest: Manifest, tokenizer_fingerprint: str) -> None:
    found = str(manifest.extra.get("tokenizer_fingerprint"))
    if found != tokenizer_fingerprint:
        raise ArtifactError(
            f"{artifact}: made with tokenizer {found[:12]}, the model's is "
            f"{tokenizer_fingerprint[:12]}; rebuild it with this model's tokenizer"
        )


@dataclass(frozen=True)
class Chain:
    """The checked manifests of corpus -> tokens -> index (and SPLADE over the corpus)."""

    corpus: Manifest
    tokens: Manifest
    index: Manifest
    splade: Manifest | None


def tokens_of_corpus(paths: Any) -> tuple[Manifest, Manifest]:
    """(corpus, tokens) manifests after checking the tokens were made from this corpus."""
    corpus = read_manifest(paths.corpus, "corpus")
    tokens = read_manifest(paths.tokens, "tokens")
    made_from(Path(paths.tokens), tokens, "corpus", Path(paths.corpus), corpus)
    return corpus, tokens


def check_chain(paths: Any, tokenizer_fingerprint: str, splade: bool = True) -> Chain:
    """The index was made from these tokens, made from this corpus by this tokenizer, and
    SPLADE's rankings (`splade`) from this corpus; else ArtifactError naming the folder.
    `paths`: retrollm.settings.Paths or alike (corpus, tokens, index, splade)."""
    corpus, tokens = tokens_of_corpus(paths)
    same_tokenizer(Path(paths.tokens), tokens, tokenizer_fingerprint)
    index = read_manifest(paths.index, "index")
    made_from(Path(paths.index), index, "tokens", Path(paths.tokens), tokens)
    same_tokenizer(Path(paths.index), index, tokenizer_fingerprint)
    sparse = None
    if splade:
        sparse = read_manifest(paths.splade, "splade")
        made_from(Path(paths.splade), sparse, "corpus", Path(paths.corpus), corpus)
    return Chain(corpus, tokens, index, sparse)


def asset_ref(assets: Path, folder: Path, content: bool = True) -> InputRef | None:
    """Check a model folder that lives under the assets artifact against the assets
    manifest (the files listed under it) and return the assets ref; None for a folder
    elsewhere, or one the manifest does not list (its reader records its own hash)."""
    assets, folder = Path(assets), Path(folder)
    try:
        prefix = folder.resolve().relative_to(assets.resolve()).as_posix().rstrip("/") + "/"
    except ValueError:
        return None
    if not (assets / MANIFEST).is_file():
        return None
    manifest = read_manifest(assets, "assets")
    if not any(name.startswith(prefix) for name in manifest.files):
        return None
    verify_files(assets, manifest, [prefix], content)
    return InputRef(path=str(assets), schema_name="assets", fingerprint=manifest.fingerprint)
