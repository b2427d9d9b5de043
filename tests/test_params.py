"""One source for every setting: params.yaml sets every field of every section it feeds,
and the engine configs are the stage params' own fields, not copies matched by name."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from stages.common import load_params

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {  # params.yaml section -> the typed model that reads it
    "paths": "stages.common:Paths",
    "artifacts": "stages.common:ArtifactsParams",
    "ray": "retrollm.fanout:RayParams",
    "fetch_assets": "stages.fetch_assets:FetchAssetsParams",
    "prepare_corpus": "stages.prepare_corpus:PrepareCorpusParams",
    "prepare_qa": "stages.prepare_qa:PrepareQAParams",
    "prepare_model": "stages.prepare_model:PrepareModelParams",
    "tokenize_corpus": "stages.tokenize_corpus:TokenizeCorpusParams",
    "build_index": "stages.build_index:BuildIndexParams",
    "sparse_expand": "stages.sparse_expand:SparseExpandParams",
    "decode": "retrollm.decoding.config:DecodeConfig",
    "build_trainset": "stages.build_trainset:BuildTrainsetParams",
    "build_rag_trainset": "stages.build_rag_trainset:BuildRagTrainsetParams",
    "train": "stages.train:TrainParams",
    "train_rag": "stages.train:TrainRagParams",
    "evaluate": "stages.evaluate:EvaluateParams",
    "evaluate.dense": "stages.common:DenseParams",
    "evaluate.baselines": "retrollm.baselines:BaselineConfig",
    "report": "stages.report:ReportParams",
}


def _model(target: str) -> type:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_params_yaml_sets_every_field(section: str) -> None:
    load_params(section, _model(SECTIONS[section]), REPO / "params.yaml")


def test_every_top_level_section_is_read_by_a_model() -> None:
    sections = set(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert sections == {s for s in SECTIONS if "." not in s}


def test_a_missing_key_is_an_error_naming_it(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    del params["train"]["grad_accum"]
    del params["evaluate"]["baselines"]["top_k"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match=r"'train' does not set grad_accum"):
        load_params("train", _model(SECTIONS["train"]), path)
    with pytest.raises(SystemExit, match=r"'evaluate' does not set baselines\.top_k"):
        load_params("evaluate", _model(SECTIONS["evaluate"]), path)


def test_engine_configs_are_the_stage_params_own_fields() -> None:
    from retrollm.training.loop import LoopConfig
    from retrollm.training.trainset import TrainsetConfig
    from stages.build_trainset import BuildTrainsetParams
    from stages.train import TrainParams

    assert issubclass(TrainParams, LoopConfig) and issubclass(BuildTrainsetParams, TrainsetConfig)
    train = load_params("train", TrainParams, REPO / "params.yaml")
    loop = train.loop()
    assert type(loop) is LoopConfig
    assert loop.model_dump() == {name: getattr(train, name) for name in LoopConfig.model_fields}
    build = load_params("build_trainset", BuildTrainsetParams, REPO / "params.yaml")
    config = build.config("hotpotqa")
    assert type(config) is TrainsetConfig and config.k_evidence == build.k_evidence_multihop
    assert build.config("nq").model_dump() == {
        name: getattr(build, name) for name in TrainsetConfig.model_fields
    }
