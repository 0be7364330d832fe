import torch
from transformers import AutoTokenizer

from ko_clip import KoreanPromptEncoder, KoreanStudent, KoreanStudentConfig, Target
from ko_clip.student import scratch_student, train_wordpiece

SD2_LIKE = Target("base", hidden_size=1024)
REFINER_LIKE = Target("refiner", hidden_size=1280, pooled_size=1280)
TINY_BACKBONE = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def tiny_encoder(head: str = "cross_attention") -> KoreanPromptEncoder:
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "파란 네모가 가운데에 있다", "a red circle"], vocab_size=200)
    model = scratch_student(
        tokenizer, [SD2_LIKE, REFINER_LIKE], TINY_BACKBONE, trunk=head, trunk_layers=1, trunk_heads=2
    )
    return KoreanPromptEncoder(model, tokenizer)


def test_heads_give_pipeline_shapes_for_sd2_and_refiner_targets():
    for head in ("cross_attention", "positional"):
        encoder = tiny_encoder(head)
        base = encoder.encode(["빨간 원", "아주 긴 문장 " * 10], "base")
        refiner = encoder.encode(["빨간 원", "파란 네모"], "refiner")
        assert base.prompt_embeds.shape == (2, 77, 1024) and base.pooled_prompt_embeds is None
        assert refiner.prompt_embeds.shape == (2, 77, 1280) and refiner.pooled_prompt_embeds.shape == (2, 1280)


def test_korean_and_english_lengths_differ_but_output_length_does_not():
    encoder = tiny_encoder()
    short, long = (
        encoder.encode(["원"], "base"),
        encoder.encode(["왼쪽에 있는 아주 커다란 빨간색 동그라미 " * 3], "base"),
    )
    assert short.prompt_embeds.shape == long.prompt_embeds.shape == (1, 77, 1024)


def test_empty_prompt_gets_the_teachers_unconditional_embedding():
    encoder = tiny_encoder()
    head = encoder.model.heads["refiner"]
    head.null_tokens.fill_(0.5)
    head.null_pooled.fill_(-1.0)
    out = encoder.encode(["", "빨간 원"], "refiner")
    assert torch.equal(out.prompt_embeds[0], head.null_tokens) and torch.equal(
        out.pooled_prompt_embeds[0], head.null_pooled
    )
    assert not torch.equal(out.prompt_embeds[1], head.null_tokens)


def test_save_and_load_round_trip_gives_identical_embeddings(tmp_path):
    encoder = tiny_encoder()
    encoder.model.heads["base"].null_tokens.normal_()
    encoder.save_pretrained(tmp_path)
    reloaded = KoreanPromptEncoder.from_pretrained(tmp_path)
    assert isinstance(reloaded.model, KoreanStudent) and isinstance(reloaded.model.config, KoreanStudentConfig)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    for target in ("base", "refiner"):
        a, b = (
            encoder.encode(["빨간 원이 왼쪽에 있다", ""], target),
            reloaded.encode(["빨간 원이 왼쪽에 있다", ""], target),
        )
        assert torch.equal(a.prompt_embeds, b.prompt_embeds)
        if target == "refiner":
            assert torch.equal(a.pooled_prompt_embeds, b.pooled_prompt_embeds)
    assert AutoTokenizer.from_pretrained(tmp_path)("빨간 원").input_ids == encoder.tokenizer("빨간 원").input_ids


def test_unknown_target_is_a_clear_error():
    encoder = tiny_encoder()
    try:
        encoder.encode(["원"], "sdxl")
    except KeyError as error:
        assert "no head 'sdxl'" in str(error) and "base, refiner" in str(error)
    else:
        raise AssertionError("expected a KeyError")
