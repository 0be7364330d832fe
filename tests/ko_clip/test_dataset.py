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
