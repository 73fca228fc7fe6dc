"""Models by Hugging Face Hub id, resolved through a Hub cache built here in the Hub's layout.

No network: every test sets HF_HUB_OFFLINE, and the cache is a folder this test writes
(models--<owner>--<name>/refs/<ref> holding a commit hash, snapshots/<hash>/ the files),
filled with the tiny test model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from outrider.models import ModelNotFound, resolve_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--acme--tiny-chat"
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(resolve_model("tiny-random"), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_hub_id_resolves_to_its_cached_snapshot_and_loads(hub_cache):
    folder = resolve_model("acme/tiny-chat")
    assert folder == hub_cache / "models--acme--tiny-chat" / "snapshots" / COMMIT
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32)
    ids = AutoTokenizer.from_pretrained(folder)("what is 2+3?", return_tensors="pt").input_ids
    assert torch.equal(model(ids).logits, reference(ids).logits)


def test_a_revision_by_commit_and_by_ref(hub_cache):
    assert resolve_model(f"acme/tiny-chat@{COMMIT}").name == COMMIT
    (hub_cache / "models--acme--tiny-chat" / "refs" / "v1").write_text(COMMIT)
    assert resolve_model("acme/tiny-chat@v1").name == COMMIT


def test_hf_home_places_the_cache_when_hf_hub_cache_is_unset(hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(hub_cache.parent))
    assert resolve_model("acme/tiny-chat").parent.name == "snapshots"


def test_a_missing_model_says_what_was_tried_and_how_to_get_it(hub_cache):
    with pytest.raises(ModelNotFound) as error:
        resolve_model("acme/other@v2")
    message = str(error.value)
    assert "built-in models (smollm2-135m-instruct" in message
    assert "a local folder 'acme/other@v2': does not exist" in message
    assert f"the Hugging Face cache {hub_cache}: no complete snapshot of acme/other@v2" in message
    assert "the Hub: not asked (HF_HUB_OFFLINE is set)" in message
    assert "huggingface-cli download acme/other --revision v2" in message


def test_a_snapshot_without_config_json_is_not_a_model(hub_cache):
    (hub_cache / "models--acme--tiny-chat" / "snapshots" / COMMIT / "config.json").unlink()
    with pytest.raises(ModelNotFound, match="no complete snapshot of acme/tiny-chat@main"):
        resolve_model("acme/tiny-chat")


def test_a_local_folder_wins_over_a_hub_id_of_the_same_spelling(hub_cache, tmp_path, monkeypatch):
    local = tmp_path / "acme" / "tiny-chat"
    shutil.copytree(resolve_model("tiny-random"), local)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("acme/tiny-chat") == local.resolve()


def test_not_a_model_of_any_kind(hub_cache):
    with pytest.raises(ModelNotFound, match="nor a Hugging Face Hub id"):
        resolve_model("no-such-model")


def test_preflight_refuses_a_hub_model_it_cannot_get_and_names_the_field(hub_cache, tmp_path):
    from outrider.config import load_config
    from outrider.config.base import ConfigError
    from outrider.train.preflight import preflight
    from testkit.e2e import toy_run_config

    cached = load_config(toy_run_config(tmp_path, "hub", policy={"model": "acme/tiny-chat"}, learner={"model": "acme/tiny-chat"}))
    preflight(cached)  # in the cache: nothing to refuse
    missing = load_config(toy_run_config(tmp_path, "hub", learner={"model": "acme/missing"}))
    with pytest.raises(ConfigError) as error:
        preflight(missing)
    assert "learner.model: " in str(error.value) and "HF_HUB_OFFLINE is set" in str(error.value)
    assert "policy.model" not in str(error.value)
