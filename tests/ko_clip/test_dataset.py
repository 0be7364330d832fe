import json

import pandas as pd
import pytest

from ko_clip.dataset import CorpusError, Pair, normalize, read_pairs, split_pairs


@pytest.fixture
def mixed_corpus(tmp_path):
    pd.DataFrame(
        {
            "ID": [1, 2, 3],
            "대분류": ["a", "b", "c"],
            "원문": ["빨간 원", " 파란\u3000 네모 ", None],
            "번역문": ["a red circle", "a blue square", "x"],
        }
    ).to_excel(tmp_path / "part1.xlsx", index=False)
    nested = tmp_path / "nested"
    nested.mkdir()
    pd.DataFrame({"ko": ["빨간 원", "노란 별"], "en": ["a red circle", "a yellow star"]}).to_csv(
        nested / "part2.csv", index=False
    )
    records = {"data": [{"sn": "1", "ko": "초록 세모", "en": "a green triangle"}, {"sn": "2", "ko": "", "en": "empty"}]}
    (nested / "part3.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def test_reads_every_format_normalises_and_drops_empty_and_duplicate_pairs(mixed_corpus):
    pairs = list(read_pairs([mixed_corpus]))  # files in path order: nested/part2.csv, nested/part3.json, part1.xlsx
    assert pairs == [
        Pair("빨간 원", "a red circle"),
        Pair("노란 별", "a yellow star"),
        Pair("초록 세모", "a green triangle"),
        Pair("파란 네모", "a blue square"),
    ]


def test_normalize_composes_hangul_and_collapses_space():
    decomposed = "\u1107\u1161\u11ab"  # 반 as separate jamo
    assert normalize(f"  {decomposed}\t\n 원 ") == "반 원"
    assert normalize(None) == "" and normalize(3.0) == ""


def test_overlong_pairs_are_dropped(tmp_path):
    pd.DataFrame({"ko": ["짧다", "길" * 50], "en": ["short", "long"]}).to_csv(tmp_path / "c.csv", index=False)
    assert [p.ko for p in read_pairs([tmp_path / "c.csv"], max_chars=20)] == ["짧다"]


def test_split_is_deterministic_and_disjoint(tmp_path):
    pd.DataFrame({"ko": [f"문장 {i}" for i in range(400)], "en": [f"sentence {i}" for i in range(400)]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    train, validation = split_pairs([tmp_path], fraction=0.1)
    again = split_pairs([tmp_path], fraction=0.1)
    assert (train, validation) == again
    assert not {p.ko for p in train} & {p.ko for p in validation}
    assert 15 < len(validation) < 70 and len(train) + len(validation) == 400


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("wrong.csv", "source,target\n안녕,hello\n", r"wrong.csv: no Korean column \(expected one of 원문, ko"),
        ("no_en.csv", "ko,text\n안녕,hello\n", r"no_en.csv: no English column"),
        ("broken.json", '{"data": [', r"broken.json: not valid UTF-8 JSON"),
        ("scalar.json", '{"data": 3}', r"scalar.json: expected a list of records"),
        ("strings.json", '["안녕"]', r"strings.json: records are str"),
        ("broken.xlsx", "not a zip file", r"broken.xlsx: not a readable xlsx file"),
        ("latin1.csv", b"ko,en\n\xe9t\xe9,summer\n", r"latin1.csv: not a readable UTF-8 csv"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CorpusError, match=message):
        list(read_pairs([path]))


def test_xlsx_without_translation_column_names_the_columns(tmp_path):
    pd.DataFrame({"원문": ["안녕"], "설명": ["x"]}).to_excel(tmp_path / "bad.xlsx", index=False)
    with pytest.raises(CorpusError, match=r"bad.xlsx: no English column .*found 원문, 설명"):
        list(read_pairs([tmp_path / "bad.xlsx"]))


def test_missing_path_and_unsupported_type(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        list(read_pairs([tmp_path / "missing"]))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CorpusError, match="unsupported file type"):
        list(read_pairs([tmp_path / "notes.txt"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no corpus files"):
        list(read_pairs([tmp_path / "empty"]))


def test_reads_the_miniworld_corpus_in_all_three_formats(corpus_dir):
    pairs = list(read_pairs([corpus_dir / "train"]))
    assert len(pairs) == 7200


OPEN = [Pair("빨간 원", "a red circle"), Pair("파란 별", "a blue star"), Pair("초록 세모", "a green triangle")]


def write_open_corpus(directory, name: str, pairs=OPEN):
    """`pairs` written in one of the open corpora's formats; returns the path to give `corpus:`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    translation = [{"en": p.en, "ko": p.ko} for p in pairs]
    if name == "parquet-translation":  # as the hub serves OPUS-100
        pq.write_table(pa.table({"translation": translation}), directory / "opus.parquet")
        return directory / "opus.parquet"
    if name == "parquet-columns":
        pq.write_table(pa.table({"ko": [p.ko for p in pairs], "en": [p.en for p in pairs]}), directory / "c.parquet")
        return directory / "c.parquet"
    if name == "arrow-stream":  # the layout `datasets.save_to_disk` writes (data-00000-of-00001.arrow)
        table = pa.table({"translation": translation})
        with pa.ipc.new_stream(str(directory / "data.arrow"), table.schema) as writer:
            writer.write_table(table)
        return directory / "data.arrow"
    if name == "arrow-file":
        table = pa.table({"korean": [p.ko for p in pairs], "english": [p.en for p in pairs]})
        with pa.ipc.new_file(str(directory / "pairs.arrow"), table.schema) as writer:
            writer.write_table(table)
        return directory / "pairs.arrow"
    if name == "moses":
        (directory / "news.en-ko.ko").write_text("".join(p.ko + "\n" for p in pairs), encoding="utf-8")
        (directory / "news.en-ko.en").write_text("".join(p.en + "\n" for p in pairs), encoding="utf-8")
        return directory / "news.en-ko.en"  # either file names the pair
    if name == "tmx":
        units = "".join(
            f'<tu><tuv xml:lang="en"><seg>{p.en}</seg></tuv><tuv xml:lang="ko-KR"><seg>{p.ko}</seg></tuv></tu>\n'
            for p in pairs
        )
        (directory / "memory.tmx").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en" datatype="plaintext"'
            f' segtype="sentence" adminlang="en" creationtool="t" creationtoolversion="1" o-tmf="t"/><body>\n{units}'
            "</body></tmx>\n",
            encoding="utf-8",
        )
        return directory / "memory.tmx"
    if name == "jsonl-translation":  # `datasets`' to_json: one {"translation": {...}} a line, suffix .json
        lines = (json.dumps({"translation": t}, ensure_ascii=False) + "\n" for t in translation)
        (directory / "export.json").write_text("".join(lines), encoding="utf-8")
        return directory / "export.json"
    if name == "jsonl-columns":
        lines = (json.dumps({"ko": p.ko, "en": p.en}, ensure_ascii=False) + "\n" for p in pairs)
        (directory / "pairs.jsonl").write_text("".join(lines), encoding="utf-8")
        return directory / "pairs.jsonl"
    if name == "json-translation":
        records = [{"id": i, "translation": t} for i, t in enumerate(translation)]
        (directory / "records.json").write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
        return directory / "records.json"
    if name == "hf-saved":  # a `datasets` DatasetDict written by save_to_disk, read as hf:DIR@SPLIT
        import datasets

        dataset = datasets.Dataset.from_dict({"translation": translation})
        datasets.DatasetDict({"train": dataset}).save_to_disk(str(directory / "saved"))
        return f"hf:{directory / 'saved'}@train"
    if name == "hf-files":  # a dataset folder of parquet files, through datasets.load_dataset, offline
        (directory / "opus-100" / "en-ko").mkdir(parents=True)
        pq.write_table(pa.table({"translation": translation}), directory / "opus-100" / "en-ko" / "train.parquet")
        return f"hf:{directory / 'opus-100'}@train"
    raise ValueError(name)


OPEN_FORMATS = [
    "parquet-translation",
    "parquet-columns",
    "arrow-stream",
    "arrow-file",
    "moses",
    "tmx",
    "jsonl-translation",
    "jsonl-columns",
    "json-translation",
    "hf-saved",
    "hf-files",
]


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """`datasets` with its cache in a temporary folder and no network."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", OPEN_FORMATS)
def test_reads_the_open_corpus_formats_without_conversion(tmp_path, offline_datasets, name):
    assert list(read_pairs([write_open_corpus(tmp_path, name)])) == OPEN


def test_a_folder_mixes_formats_and_reads_a_moses_pair_once(tmp_path):
    for name in ("moses", "tmx", "parquet-translation"):
        write_open_corpus(tmp_path, name, [Pair(p.ko + f" {name}", p.en + f" {name}") for p in OPEN])
    pairs = list(read_pairs([tmp_path]))
    assert len(pairs) == 9 and len(set(pairs)) == 9


def test_files_are_detected_from_their_content_when_the_suffix_says_nothing(tmp_path):
    for name in ("parquet-translation", "tmx", "arrow-file"):
        path = write_open_corpus(tmp_path, name)
        renamed = path.rename(tmp_path / f"download-{name}")
        assert list(read_pairs([renamed])) == OPEN


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("mismatched.ko", None, r"mismatched.ko: has more lines than .*mismatched.en \(1\)"),
        ("alone.ko", None, r"alone.ko: a Moses file without its pair \(.*alone.en is missing\)"),
        ("broken.tmx", "<tmx><body><tu><tuv", r"broken.tmx: not well-formed TMX"),
        ("other.tmx", "<html><body/></html>", r"other.tmx: not a TMX file \(the root element is <html>"),
        (
            "japanese.tmx",
            '<tmx><body><tu><tuv xml:lang="ja"><seg>x</seg></tuv>'
            '<tuv xml:lang="en"><seg>y</seg></tuv></tu></body></tmx>',
            r"japanese.tmx: no translation unit with both a Korean and an English segment \(languages: en, ja\)",
        ),
        ("broken.parquet", "PAR1 not really", r"broken.parquet: not a readable parquet file"),
        ("broken.arrow", "ARROW1 not really", r"broken.arrow: not a readable arrow file"),
        ("bad-line.jsonl", '{"ko": "가", "en": "a"}\n{"ko": \n', r"bad-line.jsonl: line 2 is not valid JSON"),
        ("no-ko.jsonl", '{"translation": {"en": "a", "ja": "b"}}\n', r"no-ko.jsonl: translation: no Korean column"),
    ],
)
def test_bad_open_corpus_files_name_the_file_and_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    if name == "mismatched.ko":
        path.write_text("가\n나\n", encoding="utf-8")
        (tmp_path / "mismatched.en").write_text("a\n", encoding="utf-8")
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text("가\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        list(read_pairs([path]))


def test_a_parquet_without_korean_names_its_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"source": ["x"], "target": ["y"]}), tmp_path / "wrong.parquet")
    with pytest.raises(CorpusError, match=r"wrong.parquet: no Korean column .*found source, target"):
        list(read_pairs([tmp_path / "wrong.parquet"]))


def test_an_hf_dataset_missing_offline_is_a_corpus_error(offline_datasets):
    with pytest.raises(CorpusError, match=r"hf:nobody/no-such-corpus:en-ko@train: cannot load"):
        list(read_pairs(["hf:nobody/no-such-corpus:en-ko@train"]))


def test_large_files_stream_in_batches(tmp_path, monkeypatch):
    """A parquet file is read a record batch at a time: the first pairs come before the last batch is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ko_clip.dataset import formats

    monkeypatch.setattr(formats, "BATCH_ROWS", 10)
    pq.write_table(
        pa.table({"ko": [f"문장 {i}" for i in range(100)], "en": [f"sentence {i}" for i in range(100)]}),
        tmp_path / "big.parquet",
        row_group_size=10,
    )
    batches = []
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            batches.append(len(batch))
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    pairs = read_pairs([tmp_path / "big.parquet"])
    assert next(pairs) == Pair("문장 0", "sentence 0") and batches == [10]
    assert len(list(pairs)) == 99 and batches == [10] * 10


def test_english_prompts_from_parquet_csv_and_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ko_clip.dataset import read_english

    pq.write_table(
        pa.table({"prompt": ["a red circle", "  a  blue star ", None], "seed": [1, 2, 3]}), tmp_path / "m.parquet"
    )
    pd.DataFrame({"text": ["a green square", "a red circle"]}).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "p.txt").write_text("a yellow diamond\n\nheld out\n", encoding="utf-8")
    assert read_english([tmp_path], exclude=["held out"]) == [
        "a red circle",
        "a blue star",
        "a green square",
        "a yellow diamond",
    ]
    pd.DataFrame({"ko": ["원"]}).to_csv(tmp_path / "korean.csv", index=False)
    with pytest.raises(CorpusError, match=r"korean.csv: no English column \(expected one of prompt"):
        read_english([tmp_path / "korean.csv"])


@pytest.mark.parametrize("name", ["parquet-translation", "moses", "tmx", "jsonl-translation", "hf-files"])
def test_training_and_export_read_each_open_format_directly(tiny_setup, tiny_config, tmp_path, offline_datasets, name):
    """A few steps from the tiny corpus written in each format, no conversion step, exported and loaded back."""
    from ko_clip.encoder import KoreanPromptEncoder
    from ko_clip.train import main

    pairs = list(read_pairs([tiny_setup / "pairs.csv"]))
    (tmp_path / "corpus").mkdir()
    config = tiny_config(tiny_setup, tmp_path / "run", steps=3)
    config.corpus = [str(write_open_corpus(tmp_path / "corpus", name, pairs))]
    config.export_dir, config.eval_every = str(tmp_path / "export"), 3
    progress = main(config)
    assert progress["step"] == 3 and "274 training pairs" in (tmp_path / "export" / "README.md").read_text("utf-8")
    encoder = KoreanPromptEncoder.from_pretrained(tmp_path / "export")
    assert encoder.encode(["빨간 원"], "base").prompt_embeds.shape == (1, 77, 128)


def test_the_cli_names_a_bad_corpus_file_without_a_stack_trace(tmp_path, capsys):
    from ko_clip.__main__ import main as cli

    (tmp_path / "alone.ko").write_text("가\n", encoding="utf-8")
    (tmp_path / "broken.tmx").write_text("<tmx><body><tu>", encoding="utf-8")
    (tmp_path / "damaged.parquet").write_bytes(b"PAR1 truncated")
    for path in ("alone.ko", "broken.tmx", "damaged.parquet"):
        out = str(tmp_path / "run")
        assert cli(["train", "--set", f"corpus={tmp_path / path}", f"out_dir={out}", "export_dir=null"]) == 2
        error = capsys.readouterr().err.split("\r")[-1]  # after the cleared progress bar
        assert error.startswith(f"error: {tmp_path / path}: ") and "Traceback" not in error
