"""miniworld.prompts: the prompt CSV files and their errors."""

import pytest

from miniworld.prompts import read_prompts
from miniworld.world import Scene


def test_prompt_file_errors_name_the_problem(tmp_path):
    (tmp_path / "cols.csv").write_text("prompt,color\nx,red\n")
    with pytest.raises(ValueError, match="missing column"):
        read_prompts(tmp_path / "cols.csv")
    (tmp_path / "value.csv").write_text("prompt,color,shape,size,position,background\nx,pink,circle,small,left,white\n")
    with pytest.raises(ValueError, match="line 2: unknown color 'pink'"):
        read_prompts(tmp_path / "value.csv")
    prompts, scenes = read_prompts(_ok(tmp_path))
    assert prompts == ["빨간 원"] and scenes == [Scene("red", "circle", "small", "left", "white")]


def _ok(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("prompt,color,shape,size,position,background\n빨간 원,red,circle,small,left,white\n")
    return path
