"""ko_clip.states: the cache of frozen backbone states that training reads instead of recomputing them."""

from __future__ import annotations

import torch

from ko_clip import Target
from ko_clip.states import StateCache
from ko_clip.student import scratch_student, train_wordpiece


def test_state_cache_computes_only_the_texts_it_lacks_and_keeps_them(tmp_path):
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "a red circle"], vocab_size=120)
    backbone = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    model = scratch_student(tokenizer, [Target("base", 24)], backbone, head_layers=1, head_heads=2).eval()
    model.config.frozen_layers = 1
    computed: list[str] = []

    def tokenize(texts: list[str]) -> dict:
        computed.extend(texts)
        return dict(tokenizer(texts, padding=True, return_tensors="pt"))

    first = StateCache.build(model, tokenize, ["빨간 원", "a red circle"], tmp_path)
    second = StateCache.build(model, tokenize, ["a red circle", "왼쪽에 있다", "빨간 원"], tmp_path)
    assert sorted(computed) == ["a red circle", "빨간 원", "왼쪽에 있다"]  # each text once, across both runs
    assert len(list(tmp_path.iterdir())) == 1  # one file, grown in place; no temporary left behind
    for text in ("빨간 원", "a red circle"):
        assert torch.equal(first.lookup([text], torch.device("cpu"))[0], second.lookup([text], torch.device("cpu"))[0])
    batch = tokenizer(["왼쪽에 있다"], return_tensors="pt")
    with torch.no_grad():
        direct = model.frozen_states(**batch).half().float()
    reloaded = StateCache.load(next(tmp_path.iterdir()))
    assert torch.equal(reloaded.lookup(["왼쪽에 있다"], torch.device("cpu"))[0], direct)
