"""What one ko_clip training run costs: the real training step on real-size models with random weights.

Builds the config's student (its backbone from `benchmarks/architectures/`, trunk and heads as configured) and its
teacher towers from the same folder (architectures written from the published config.json files; nothing is
downloaded), then runs `ko_clip.train`'s own step (`step_loss` + `optimizer_step`, teachers computed every step
as with `cache_teacher: false`) at the config's batch size, with and without the frozen layers, in float32 and
bf16 mixed precision. It prints time per step, pairs a second, peak memory and the FLOPs of a step (counted by
torch's FLOP counter, and by the formula the real-size estimate uses), then the real-size FLOPs per step and the
hours a run of the config's steps needs at a stated GPU throughput.

    python -m benchmarks.train_cost [--config sd2-sdxl] [--reduced] [--steps 3] [--tokens 48]
                                    [--bf16-tflops 400] [--fp32-tflops 50] [--budget 100000 ...]

`--reduced` (for a CPU) divides every width by 4 and every depth by 4 and uses a batch of 8: it checks the shapes
and the code path, and the formula against the counter; only a GPU run gives real times. Teacher towers are named
by the issue-20 convention, `<tower>:<layer>` (e.g. `openclip-vit-h-14:last`); `xlm-roberta-large` has the
architecture of `intfloat/multilingual-e5-large`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import resource
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    AutoConfig,
    AutoModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from benchmarks.random_pipelines import architecture as published_architecture
from ko_clip.config import TrainConfig, load_config
from ko_clip.dataset import Pair
from ko_clip.student import train_wordpiece
from ko_clip.teacher import Teacher, TeacherSpec
from ko_clip.train import (
    batch_tokenizer,
    build_student,
    optimizer_and_schedule,
    optimizer_step,
    step_loss,
    teacher_dtype,
    teacher_outputs,
)
from miniworld.corpus import training_pairs
from miniworld.paths import CLIP_DIR

TOWERS = {
    "clip-vit-l-14": "clip-vit-l-14-text-encoder",
    "openclip-vit-h-14": "sd2-text-encoder",
    "openclip-vit-bigg-14": "sdxl-refiner-text-encoder-2",
}
BACKBONES = {
    "intfloat/multilingual-e5-large": "multilingual-e5-large",
    "xlm-roberta-large": "multilingual-e5-large",
    "klue/roberta-large": "klue-roberta-large",
}
REDUCE = 4


def architecture(name: str, reduced: bool) -> dict:
    """A published architecture; reduced: widths, heads and depth divided by `REDUCE` (at least 2 layers)."""
    settings = published_architecture(name)
    if reduced:
        for key in ("hidden_size", "intermediate_size", "num_attention_heads", "projection_dim"):
            if key in settings:
                settings[key] //= REDUCE
        settings["num_hidden_layers"] = max(2, settings["num_hidden_layers"] // REDUCE)
    return settings


def tower(spec: TeacherSpec) -> str:
    name = spec.name.split(":")[0]
    if name not in TOWERS:
        raise SystemExit(f"teacher {spec.name!r}: name it <tower>:<layer> with a tower of {', '.join(TOWERS)}")
    return TOWERS[name]


def layer_flops(width: int, ffn: int, length: int, rows: int) -> float:
    """Forward FLOPs of one transformer layer (matmuls only): projections, attention scores and values, MLP."""
    return 2 * rows * length * (4 * width * width + 2 * width * ffn) + 4 * rows * length * length * width


def step_flops(config: TrainConfig, backbone: dict, teachers: list[dict], tokens: int) -> dict[str, float]:
    """FLOPs of one training step, by part: the teachers' forward on every English sentence (77 positions); the
    student's frozen layers forward only; its trained layers, trunk and heads forward + backward (3× forward)."""
    english = config.batch_size + (config.english_batch or config.batch_size if config.english_corpus else 0)
    student_rows = (config.batch_size if config.loss.korean else 0) + (english if config.loss.english else 0)
    depth, frozen = backbone["num_hidden_layers"], config.student.frozen_layers
    one = layer_flops(backbone["hidden_size"], backbone["intermediate_size"], tokens, student_rows)
    width = config.student.trunk_width or backbone["hidden_size"]
    queries = 78
    trunk = config.student.trunk_layers * (
        2 * student_rows * (queries * 10 * width * width + tokens * 2 * width * width)
        + 4 * student_rows * (queries * queries + queries * tokens) * width
    )
    heads = sum(2 * student_rows * queries * width * (t["hidden_size"] + t.get("projection_dim", 0)) for t in teachers)
    teacher = sum(
        t["num_hidden_layers"] * layer_flops(t["hidden_size"], t["intermediate_size"], 77, english) for t in teachers
    )
    return {
        "teachers (forward)": teacher,
        "student frozen layers (forward)": frozen * one,
        "student trained layers, trunk, heads (forward + backward)": 3 * ((depth - frozen) * one + trunk + heads),
    }


def texts_of_length(tokenizer, sentences: list[str], tokens: int, count: int, rng: random.Random) -> list[str]:
    """`count` texts of about `tokens` tokens each, made of corpus sentences: the padded batch length is `tokens`."""
    texts = []
    for _ in range(count):
        text = rng.choice(sentences)
        while len(tokenizer(text).input_ids) < tokens:
            text += " " + rng.choice(sentences)
        texts.append(text)
    return texts


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak so far)"


def build_towers(config: TrainConfig, workdir: Path, reduced: bool, device: torch.device) -> list[TeacherSpec]:
    """Random-weight teacher towers saved as text-encoder directories, specs pointing at them."""
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR, model_max_length=77)  # 77 positions are what count
    specs = []
    for spec in config.teachers:
        model_class = CLIPTextModelWithProjection if spec.pooled else CLIPTextModel
        with device:
            model = model_class(CLIPTextConfig(**architecture(tower(spec), reduced)))
        directory = workdir / "teachers" / spec.name.replace(":", "-")
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        specs.append(dataclasses.replace(spec, path=str(directory), subfolder="", tokenizer_subfolder=""))
    return specs


def build_backbone(config: TrainConfig, workdir: Path, reduced: bool, device: torch.device) -> tuple[str, dict]:
    """A random-weight backbone of the configured architecture, with a tokenizer whose ids fit every vocabulary."""
    name = BACKBONES.get(config.student.backbone)
    if name is None:
        raise SystemExit(f"no architecture for backbone {config.student.backbone!r}; known: {', '.join(BACKBONES)}")
    settings = architecture(name, reduced)
    kind = settings.pop("model_type")
    with device:
        model = AutoModel.from_config(AutoConfig.for_model(kind, **settings), add_pooling_layer=False)
    directory = workdir / "backbone"
    model.save_pretrained(directory)
    pairs = training_pairs()
    train_wordpiece((t for p in pairs for t in (p["ko"], p["en"])), vocab_size=2000).save_pretrained(directory)
    return str(directory), settings | {"model_type": kind}


def measure(config: TrainConfig, precision: str, steps: int, tokens: int, workdir: Path, name: str) -> dict:
    """The real training step `steps` times after one warm-up step: seconds per step, peak memory, counted FLOPs."""
    AcceleratorState._reset_state(reset_partial_state=True)  # each variant its own precision
    accelerator = Accelerator(mixed_precision=precision)
    device = accelerator.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    teachers = [Teacher(spec, device, teacher_dtype(config, device.type == "cuda")) for spec in config.teachers]
    pairs = [Pair(p["ko"], p["en"]) for p in training_pairs()[:2000]]
    encoder = build_student(config, pairs, teachers, workdir / name)
    model = encoder.model.train()
    optimizer, schedule = optimizer_and_schedule(model, config)
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    tokenize = batch_tokenizer(encoder.tokenizer, device)
    teacher = teacher_outputs(teachers, {})
    heads = list(accelerator.unwrap_model(model).heads)
    rng = random.Random(0)
    korean = texts_of_length(encoder.tokenizer, [p.ko for p in pairs], tokens, config.batch_size, rng)
    english = texts_of_length(encoder.tokenizer, [p.en for p in pairs], tokens, config.batch_size, rng)
    extra = english[: config.english_batch or config.batch_size] if config.english_corpus else []

    def step() -> None:
        loss = step_loss(lambda t: model(**tokenize(t)), teacher, heads, english, korean, extra, config, device)
        optimizer_step(accelerator, loss, model, optimizer, schedule, config.grad_clip)

    step()  # warm-up: allocator, kernels
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    result = {
        "seconds": seconds,
        "pairs_per_second": config.batch_size * accelerator.num_processes / seconds,
        "peak_memory": peak_memory(device),
        "counted_flops": counter.get_total_flops(),
        "trained_parameters": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sd2-sdxl")
    parser.add_argument("--reduced", action="store_true", help="widths and depths ÷ 4, batch 8: a shape check for CPUs")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--tokens", type=int, default=48, help="the student's padded batch length in tokens")
    parser.add_argument("--batch-size", type=int, help="default: the config's (8 with --reduced)")
    parser.add_argument("--bf16-tflops", type=float, default=400.0, help="achievable H100 dense bf16 TFLOP/s")
    parser.add_argument("--fp32-tflops", type=float, default=50.0, help="achievable H100 float32 TFLOP/s (no TF32)")
    parser.add_argument("--budget", type=int, nargs="*", help="step budgets to price (default: the config's steps)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    real_backbone = architecture(BACKBONES[config.student.backbone], reduced=False)
    real_teachers = [architecture(tower(t), reduced=False) for t in config.teachers]
    config.batch_size = args.batch_size or (8 if args.reduced else config.batch_size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frozen = config.student.frozen_layers
    if args.reduced:
        frozen = round(
            frozen * max(2, real_backbone["num_hidden_layers"] // REDUCE) / real_backbone["num_hidden_layers"]
        )
    print(
        f"{args.config}: backbone {config.student.backbone}, teachers {', '.join(t.name for t in config.teachers)}, "
        f"batch {config.batch_size}, {args.tokens} student tokens, {'reduced (÷4)' if args.reduced else 'real'} size, "
        f"{device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config.teachers = build_towers(config, workdir, args.reduced, device)
        backbone_dir, backbone = build_backbone(config, workdir, args.reduced, device)
        teachers = [architecture(tower(t), args.reduced) for t in load_config(args.config).teachers]
        for layers in dict.fromkeys((frozen, 0)):
            for precision in ("no", "bf16"):
                variant = copy.deepcopy(config)
                variant.student = dataclasses.replace(config.student, backbone=backbone_dir, frozen_layers=layers)
                variant.cache_states = False
                name = f"frozen{layers}-{precision}"
                result = measure(variant, precision, args.steps, args.tokens, workdir, name)
                formula = sum(step_flops(variant, backbone, teachers, args.tokens).values())
                rows.append((layers, precision, result, formula))
                print(
                    f"frozen layers {layers:>2}, {'bf16' if precision == 'bf16' else 'fp32'}: "
                    f"{result['seconds']:.3f} s/step, {result['pairs_per_second']:.1f} pairs/s, "
                    f"{result['peak_memory']}, "
                    f"{result['trained_parameters'] / 1e6:.1f} M trained; FLOPs/step counted "
                    f"{result['counted_flops'] / 1e12:.3f} T, formula {formula / 1e12:.3f} T",
                    flush=True,
                )
    real = load_config(args.config)
    parts = step_flops(real, real_backbone, real_teachers, args.tokens)
    print(f"\nreal size, {real.batch_size} pairs a step, {args.tokens} student tokens: FLOPs per step by part")
    for part, flops in parts.items():
        print(f"  {part}: {flops / 1e12:.2f} T")
    teacher_flops = parts["teachers (forward)"]
    student_flops = sum(parts.values()) - teacher_flops
    # the student runs under bf16 autocast; the teachers in the config's teacher_dtype
    teacher_tflops = args.fp32_tflops if real.teacher_dtype == "float32" else args.bf16_tflops
    seconds = teacher_flops / (teacher_tflops * 1e12) + student_flops / (args.bf16_tflops * 1e12)
    print(
        f"estimated H100 time per step: {seconds:.3f} s (teachers in {real.teacher_dtype} at {teacher_tflops:g} "
        f"TFLOP/s, student at {args.bf16_tflops:g} bf16 TFLOP/s)"
    )
    for steps in args.budget or [real.steps]:
        print(f"  {steps:,} steps × {real.batch_size}: {seconds * steps / 3600:.1f} h on one H100")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
