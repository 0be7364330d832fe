"""Distil a Korean student onto frozen English CLIP text encoders (one head per teacher).

Read top to bottom: data → teachers (and their cache) → student → loop (AdamW, warm-up + cosine, clipping,
periodic validation, best-model export, resumable state). `accelerate` does the device work, so the same
command trains on a CPU, a GPU, or several GPUs under `accelerate launch -m ko_clip train ...`.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from durable import replace_directory, save_directory_atomically
from ko_clip.augment import variants
from ko_clip.card import card_files, training_summary
from ko_clip.config import TrainConfig
from ko_clip.dataset import Pair, read_english, split_pairs
from ko_clip.encoder import KoreanPromptEncoder, write_student
from ko_clip.evaluation import TeacherOutputs, embedding_metrics, format_metrics
from ko_clip.modeling import KoreanStudent, TargetHead
from ko_clip.states import StateCache
from ko_clip.student import pretrained_student, scratch_student, train_wordpiece
from ko_clip.teacher import Teacher, TeacherCache

MINIWORLD = "miniworld:"


def corpus_sources(entries: list[str]) -> list[str]:
    """Config corpus entries as paths; `miniworld:DIR` writes the embedded corpus to DIR first if needed."""
    sources = []
    for entry in entries:
        if entry.startswith(MINIWORLD):
            directory = Path(entry[len(MINIWORLD) :])
            if not (directory / "train").exists():
                from miniworld.corpus import write_corpus

                write_corpus(directory)
            sources.append(str(directory / "train"))
        else:
            sources.append(entry)
    return sources


def teacher_dtype(config: TrainConfig, on_gpu: bool) -> torch.dtype:
    """The teachers' dtype: the config's on a GPU, float32 on a CPU (where bfloat16 matmuls are slow)."""
    return getattr(torch, config.teacher_dtype) if on_gpu else torch.float32


def teacher_outputs(teachers: list[Teacher], caches: dict[str, TeacherCache]) -> TeacherOutputs:
    """(target name, English sentences) → teacher token states and pooled embeddings, from the cache if there is one."""
    by_name = {t.spec.name: t for t in teachers}

    def outputs(name: str, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if name in caches:
            return caches[name].lookup(sentences)
        tokens, pooled = by_name[name](sentences)
        return tokens.cpu(), None if pooled is None else pooled.cpu()

    return outputs


def add_noise_word(text: str, rng: random.Random) -> str:
    """Insert one made-up Hangul word at a random place: the student learns to ignore words it cannot place."""
    word = "".join(chr(0xAC00 + rng.randrange(11172)) for _ in range(rng.randint(1, 3)))
    words = text.split()
    words.insert(rng.randint(0, len(words)), word)
    return " ".join(words)


def distillation_loss(
    predicted: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
    targets: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
    config: TrainConfig,
) -> torch.Tensor:
    loss = torch.zeros((), device=next(iter(predicted.values()))[0].device)
    for name, (tokens, pooled) in predicted.items():
        target_tokens, target_pooled = targets[name]
        if config.loss.token:
            # relative to the teacher's scale, so targets with larger activations do not drown the others
            scale = target_tokens.pow(2).mean().detach()
            loss = loss + config.loss.token * F.mse_loss(tokens.float(), target_tokens) / scale
        if pooled is not None and config.loss.pooled:
            assert target_pooled is not None  # the student pools for a target exactly when its teacher does
            cosine = F.cosine_similarity(pooled.float(), target_pooled, dim=-1).mean()
            loss = loss + config.loss.pooled * (1 - cosine + F.mse_loss(pooled.float(), target_pooled))
    return loss


def step_loss(
    student: Callable[[list[str]], dict],
    teacher: TeacherOutputs,
    heads: list[str],
    batch: list[str],
    korean: list[str],
    english_only: list[str],
    config: TrainConfig,
    device: torch.device,
) -> torch.Tensor:
    """One step's loss. Korean side: the student on `korean` (the batch's Korean sentences or their variants) against
    the teacher on the batch's English sentences. English side: the student on those English sentences and on
    `english_only` ones, against the teacher on the same text."""
    english = batch + english_only
    targets = {name: _to(teacher(name, english), device) for name in heads}
    loss = torch.zeros((), device=device)
    if config.loss.korean:
        paired = {
            name: (tokens[: len(batch)], None if pooled is None else pooled[: len(batch)])
            for name, (tokens, pooled) in targets.items()
        }
        loss = loss + config.loss.korean * distillation_loss(student(korean), paired, config)
    if config.loss.english:
        loss = loss + config.loss.english * distillation_loss(student(english), targets, config)
    return loss


def optimizer_step(accelerator: Accelerator, loss: torch.Tensor, model, optimizer, schedule, grad_clip: float) -> float:
    """Backward, clipping, the optimizer and schedule steps; the learning rate this step used."""
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    lr = schedule.get_last_lr()[0]
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return lr


def build_student(config: TrainConfig, train: list[Pair], teachers: list[Teacher], out: Path) -> KoreanPromptEncoder:
    """The initial student, saved under `out/init` so a resumed run rebuilds exactly the same one."""
    init = out / "init"
    if (init / "config.json").exists():
        return KoreanPromptEncoder.from_pretrained(init)
    s = config.student
    targets = [t.target for t in teachers]
    trunk: dict[str, Any] = dict(
        trunk=s.trunk, trunk_layers=s.trunk_layers, trunk_heads=s.trunk_heads, trunk_width=s.trunk_width
    )
    if s.backbone == "scratch":
        # trained without Korean when training never reads it (English side only)
        texts = (t for p in train for t in ((p.ko, p.en) if config.loss.korean else (p.en,)))
        tokenizer: PreTrainedTokenizerBase = train_wordpiece(texts, s.vocab_size)
        backbone = dict(
            hidden_size=s.hidden_size,
            num_hidden_layers=s.num_hidden_layers,
            num_attention_heads=s.num_attention_heads,
            intermediate_size=s.intermediate_size,
        )
        model = scratch_student(tokenizer, targets, backbone, **trunk)
    else:
        model, tokenizer = pretrained_student(s.backbone, targets, frozen_layers=s.frozen_layers, **trunk)
    for teacher in teachers:
        tokens, pooled = teacher([""])
        head = cast(TargetHead, model.heads[teacher.spec.name])  # ModuleDict items are typed as Module
        head.null_tokens.copy_(tokens[0])
        if pooled is not None:
            head.null_pooled.copy_(pooled[0])
    encoder = KoreanPromptEncoder(model, tokenizer)
    save_directory_atomically(encoder.save_pretrained, init)
    return encoder


def optimizer_and_schedule(model: KoreanStudent, config: TrainConfig) -> tuple[torch.optim.Optimizer, LambdaLR]:
    """AdamW on the trained parameters (a frozen backbone part is left out), warm-up + cosine schedule."""
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    return optimizer, LambdaLR(optimizer, lambda s: lr_factor(s, config.warmup, config.steps))


def batch_tokenizer(tokenizer: PreTrainedTokenizerBase, device: torch.device) -> Callable[[list[str]], dict]:
    """Texts → the student's padded input ids and attention mask on `device`."""

    def tokenize(texts: list[str]) -> dict:
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        return {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device)}

    return tokenize


def lr_factor(step: int, warmup: int, steps: int) -> float:
    """Linear warm-up, then a cosine down to 0 at `steps`, and 0 after it (it never climbs back up)."""
    if step < warmup:
        return step / warmup
    progress = min((step - warmup) / max(1, steps - warmup), 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))


def save_student(
    model: KoreanStudent, tokenizer: PreTrainedTokenizerBase, directory: Path, files: dict[str, str] | None = None
) -> None:
    """Save the live training module from a CPU copy of its weights: it keeps its device, dtype and train mode.
    `files` (name → text, e.g. the model card) are written into the same directory before it is swapped in."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}

    def write(tmp: Path) -> None:
        write_student(model, tokenizer, tmp, state)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")

    save_directory_atomically(write, directory)


@dataclass
class Corpus:
    """One run's sentences: training and validation pairs, and English-only sentences for the English side."""

    train: list[Pair]
    validation: list[Pair]
    extra: list[str]  # never one of the validation split's English sentences

    @property
    def english(self) -> list[str]:
        """Every distinct English sentence the teachers are asked about."""
        return sorted({p.en for p in self.train} | {p.en for p in self.validation} | set(self.extra))

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "english_only": len(self.extra)}


def make_accelerator(config: TrainConfig) -> Accelerator:
    """The config's mixed precision on a GPU; on a CPU, full precision on `config.threads` threads."""
    on_gpu = torch.cuda.is_available()
    # the schedule steps once per optimizer step, as with one process (accelerate would step it once per process)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision if on_gpu else "no", step_scheduler_with_optimizer=False
    )
    if not on_gpu:
        torch.set_num_threads(config.threads)
    return accelerator


def load_corpus(config: TrainConfig, accelerator: Accelerator) -> Corpus:
    """The corpus split into training and validation pairs, and the English-only sentences."""
    with accelerator.main_process_first():
        sources = corpus_sources(config.corpus)
        english_sources = corpus_sources(config.english_corpus)
    train, validation = split_pairs(sources, config.validation_fraction, config.max_chars)
    if not train or not validation:
        raise ValueError(f"need training and validation pairs, got {len(train)} and {len(validation)}")
    extra = read_english(english_sources, config.max_chars, {p.en for p in validation}) if english_sources else []
    accelerator.print(
        f"{len(train)} training pairs, {len(validation)} validation pairs, {len(extra)} English-only sentences"
        + ("" if config.loss.korean else "; English side only: no Korean sentence is trained on")
    )
    return Corpus(train, validation, extra)


def load_teachers(
    config: TrainConfig, english: list[str], accelerator: Accelerator
) -> tuple[list[Teacher], TeacherOutputs]:
    """The frozen teachers, and their outputs on `english`, cached on disk per sentence with `cache_teacher`."""
    dtype = teacher_dtype(config, torch.cuda.is_available())
    teachers = [Teacher(spec, accelerator.device, dtype) for spec in config.teachers]
    caches = {}
    if config.cache_teacher:
        with accelerator.main_process_first():
            caches = {t.spec.name: TeacherCache.build(t, english, Path(config.cache_dir)) for t in teachers}
    return teachers, teacher_outputs(teachers, caches)


@dataclass
class Training:
    """What the loop steps, prepared by accelerate: the student, its optimizer and schedule, and the batches, one
    shuffled pass over the training pairs per epoch (`shuffle` seeded at an epoch's start gives its order)."""

    model: torch.nn.Module  # the student, wrapped for several processes
    optimizer: torch.optim.Optimizer
    schedule: LambdaLR
    loader: DataLoader
    shuffle: torch.Generator


def prepare_training(
    config: TrainConfig, model: KoreanStudent, train: list[Pair], accelerator: Accelerator
) -> Training:
    """AdamW and its schedule for `model`, and batches of `train`: each process takes its own `batch_size` pairs."""
    optimizer, schedule = optimizer_and_schedule(model, config)
    accelerator.print(
        f"student: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"{sum(p.numel() for g in optimizer.param_groups for p in g['params']) / 1e6:.2f} M trained"
    )
    shuffle = torch.Generator()
    loader: DataLoader[Pair] = DataLoader(
        train,  # type: ignore[arg-type]  # a list is a map-style dataset; torch's hint asks for a Dataset
        config.batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=list,
        generator=shuffle,
    )
    model, optimizer, schedule, loader = accelerator.prepare(model, optimizer, schedule, loader)
    if not len(loader):  # per process: len(train) // (batch_size × processes)
        raise ValueError(f"{len(train)} training pairs do not fill a batch of {config.batch_size} on each process")
    return Training(model, optimizer, schedule, loader, shuffle)


def resume(accelerator: Accelerator, out: Path) -> dict:
    """The progress record (step, best score, history); from `out/state`, with the model, optimizer, schedule and
    RNG states, if an earlier run saved one."""
    if not (out / "state" / "progress.json").exists():
        return {"step": 0, "best": float("inf"), "history": []}
    accelerator.load_state(out / "state")
    progress = json.loads((out / "state" / "progress.json").read_text())
    accelerator.print(f"resumed at step {progress['step']}")
    return progress


def frozen_state_cache(
    config: TrainConfig,
    corpus: Corpus,
    pool: list[str],
    model: KoreanStudent,
    tokenize: Callable,
    accelerator: Accelerator,
) -> StateCache | None:
    """With `cache_states` and a frozen backbone part: its output for every sentence (and Korean variant in
    `pool`) the student reads, computed once."""
    if not (config.cache_states and model.config.frozen_layers):
        return None
    texts = ([p.ko for p in corpus.train] + pool if config.loss.korean else []) + corpus.english
    with accelerator.main_process_first():
        return StateCache.build(model, tokenize, texts, Path(config.cache_dir))


def student_forward(
    model: torch.nn.Module, tokenize: Callable, states: StateCache | None, device: torch.device
) -> Callable[[list[str]], dict]:
    """Texts → the student's outputs, from the cached frozen states when there are some (`model`: the
    `KoreanStudent` as accelerate prepared it, perhaps wrapped for distributed training)."""

    def student(texts: list[str]) -> dict:
        if states is None:
            return model(**tokenize(texts))
        frozen, mask = states.lookup(texts, device)
        return model(attention_mask=mask, frozen_states=frozen)

    return student


def korean_batch(
    batch: list[Pair], korean_variants: dict[Pair, list[str]], config: TrainConfig, step: int, noise: bool
) -> list[str]:
    """The Korean side's inputs: one variant of each pair's sentence, some with a made-up word if `noise`."""
    if not config.loss.korean:
        return []
    rng = random.Random(config.seed * 1_000_003 + step)  # seeded by step, so a resumed run matches
    korean = [_pick(korean_variants[p], rng) for p in batch]
    return [add_noise_word(k, rng) if rng.random() < config.noise_words else k for k in korean] if noise else korean


def validate(
    model: KoreanStudent,
    tokenize: Callable,
    checked: list[Pair],
    teacher: TeacherOutputs,
    accelerator: Accelerator,
    step: int,
) -> dict:
    """The metrics on the validation pairs after `step` steps, printed: {head: {metric: value}}."""
    report = embedding_metrics(model, tokenize, checked, teacher)
    accelerator.print(f"step {step}\n{format_metrics(report)}")
    return report


def score(report: dict) -> float:
    """Lower is better: token MSE plus pooled (1 − cosine), summed over the heads."""
    return sum(m["token_mse"] + (1 - m.get("pooled_cosine", 1)) for m in report.values())


def checkpoint(
    config: TrainConfig,
    accelerator: Accelerator,
    model: KoreanStudent,
    tokenizer: PreTrainedTokenizerBase,
    sizes: dict[str, int],
    progress: dict,
    step: int,
    report: dict,
) -> None:
    """After validating at `step`: the student under `out_dir/best` if it scores best so far (with its model
    card), then the state to resume from under `out_dir/state`."""
    out = Path(config.out_dir)
    if (scored := score(report)) < progress["best"]:
        progress["best"] = scored
        if accelerator.is_main_process:
            summary = training_summary(config, model, sizes, step, report, accelerator.num_processes)
            save_student(model, tokenizer, out / "best", card_files(summary))
    progress["step"] = step
    _save_state(accelerator, out, progress)


def main(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # data and teachers. What goes to disk (corpus, teacher caches, the initial student, state caches), the main
    # process writes first and the others then read (`main_process_first`): every process starts from the same files.
    corpus = load_corpus(config, accelerator)
    # Without a Korean side, validation (and the best-model choice) reads the English sentences: no Korean seen
    checked = corpus.validation if config.loss.korean else [Pair(p.en, p.en) for p in corpus.validation]
    teachers, teacher = load_teachers(config, corpus.english, accelerator)

    # student, optimizer, batches, and where an earlier run stopped
    with accelerator.main_process_first():
        encoder = build_student(config, corpus.train, teachers, out)
    heads = list(encoder.model.heads)
    # trained in train mode (the encoder holds it in eval mode, for inference)
    training = prepare_training(config, encoder.model.train(), corpus.train, accelerator)
    model, steps_per_epoch = training.model, len(training.loader)
    progress = resume(accelerator, out)

    # Korean inputs: each corpus sentence and its augmented variants; the frozen backbone part computed once
    tokenize = batch_tokenizer(encoder.tokenizer, accelerator.device)
    kept, pool = variants(corpus.train, config.augment, config.seed) if config.loss.korean else ([], [])
    korean_variants = dict(zip(corpus.train, kept))
    states = frozen_state_cache(config, corpus, pool, accelerator.unwrap_model(model), tokenize, accelerator)
    student = student_forward(model, tokenize, states, accelerator.device)

    step = progress["step"]
    bar = tqdm(total=config.steps, initial=step, desc="ko_clip", disable=not accelerator.is_main_process)
    while step < config.steps:
        epoch, offset = divmod(step, steps_per_epoch)
        training.shuffle.manual_seed(config.seed + epoch)  # the same order again after a resume
        for batch in accelerator.skip_first_batches(training.loader, offset):
            korean = korean_batch(batch, korean_variants, config, step, noise=states is None)  # no cached made-up word
            english_only = _sample(
                corpus.extra, config.english_batch or config.batch_size, config.seed, step, accelerator
            )
            english = [p.en for p in batch]
            loss = step_loss(student, teacher, heads, english, korean, english_only, config, accelerator.device)
            lr = optimizer_step(accelerator, loss, model, training.optimizer, training.schedule, config.grad_clip)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step % config.eval_every == 0 or step == config.steps:
                unwrapped = accelerator.unwrap_model(model)
                report = validate(unwrapped, tokenize, checked, teacher, accelerator, step)
                progress["history"].append({"step": step, "lr": lr, "loss": loss.item(), **report})
                checkpoint(config, accelerator, unwrapped, encoder.tokenizer, corpus.sizes, progress, step, report)
            if step >= config.steps:
                break
    bar.close()
    if config.export_dir and accelerator.is_main_process:
        shutil.copytree(out / "best", Path(config.export_dir), dirs_exist_ok=True)
        accelerator.print(f"exported the best student to {config.export_dir}")
    return progress


def _sample(extra: list[str], count: int, seed: int, step: int, accelerator: Accelerator) -> list[str]:
    """`count` English-only sentences for this step and process, drawn by a generator seeded by both (resumable)."""
    if not extra:
        return []
    rng = random.Random(f"english-{seed}-{step}-{accelerator.process_index}")
    return [extra[i] for i in rng.sample(range(len(extra)), min(count, len(extra)))]


def _pick(texts: list[str], rng: random.Random) -> str:
    return texts[rng.randrange(len(texts))] if len(texts) > 1 else texts[0]


def _to(
    outputs: tuple[torch.Tensor, torch.Tensor | None], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    tokens, pooled = outputs
    return tokens.to(device), None if pooled is None else pooled.to(device)


def _save_state(accelerator: Accelerator, out: Path, progress: dict) -> None:
    """Model, optimizer, schedule and RNG state, and the progress record, swapped in as one directory.

    Every process saves its own RNG state; accelerate writes the rest from the main process, which alone
    clears, completes and swaps in the directory. Barriers keep the others from writing into a folder being
    replaced, and from reading `state/` before it is whole.
    """
    tmp = out / "state.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "progress.json").write_text(json.dumps(progress, indent=1))
        replace_directory(tmp, out / "state")
    accelerator.wait_for_everyone()
