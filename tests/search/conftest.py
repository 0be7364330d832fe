import pytest

from demo.search.embeddings import PromptEmbedder
from miniworld.paths import CLIP_DIR, KOREAN_ENCODER_DIR


@pytest.fixture(scope="module")
def embedder() -> PromptEmbedder:
    return PromptEmbedder.from_pretrained(CLIP_DIR, KOREAN_ENCODER_DIR)
