import pytest

from demo.search.embeddings import PromptEmbedder
from miniworld.paths import CLIP_DIR, KOREAN_ENCODER_DIR


@pytest.fixture(scope="session")
def embedder() -> PromptEmbedder:
    """The search embedder without a sentence head, loaded once for every search test."""
    return PromptEmbedder.from_pretrained(CLIP_DIR, KOREAN_ENCODER_DIR)
