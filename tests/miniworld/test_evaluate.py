import json

import pandas as pd
import pytest

from miniworld.evaluate import main, read_prompts
from miniworld.world import Scene


def test_generation_smoke_reads_the_prompted_colour(miniworld_generator, scorer):
    prompts = ["a large red circle in the center on a white background", "a large blue square in the center on a black background"]
    images = miniworld_generator(prompts, seeds=[0, 0])
    assert [r["color"] for r in scorer.read(images)] == ["red", "blue"]


def test_json_report_has_the_documented_keys(tmp_path, capsys):
    rows = [
        {"prompt": "a large green star on the left on a gray background", "color": "green", "shape": "star", "size": "large", "position": "left", "background": "gray"},
        {"prompt": "a small yellow diamond at the top on a black background", "color": "yellow", "shape": "diamond", "size": "small", "position": "top", "background": "black"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    assert main([str(tmp_path / "p.csv"), "--json", "--no-refiner", "--steps", "10", "--seeds", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"all_correct", "per_attribute", "clip_score", "n"}
    assert report["n"] == 4 and set(report["per_attribute"]) == {"color", "shape", "size", "position", "background"}
    assert 0 <= report["all_correct"] <= 1 and report["clip_score"] > 0


def test_prompt_file_errors_name_the_problem(tmp_path):
    (tmp_path / "cols.csv").write_text("prompt,color\nx,red\n")
    with pytest.raises(ValueError, match="missing column"):
        read_prompts(tmp_path / "cols.csv")
    (tmp_path / "value.csv").write_text("prompt,color,shape,size,position,background\nx,pink,circle,small,left,white\n")
    with pytest.raises(ValueError, match="line 2: unknown color 'pink'"):
        read_prompts(tmp_path / "value.csv")
    prompts, scenes = read_prompts(_ok(tmp_path))
    assert prompts == ["빨간 원"] and scenes == [Scene("red", "circle", "small", "left", "white")]


def test_cli_reports_a_bad_file_without_a_traceback(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("prompt\nx\n")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "bad.csv")])
    assert exit_.value.code == 2 and "missing column" in capsys.readouterr().err


def _ok(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("prompt,color,shape,size,position,background\n빨간 원,red,circle,small,left,white\n")
    return path
