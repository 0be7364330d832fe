"""ko_clip: a Korean text encoder distilled onto the CLIP text space, token-level, for each pipeline text encoder."""

from ko_clip.encoder import KoreanPromptEncoder, PromptEmbeds
from ko_clip.modeling import KoreanStudent, KoreanStudentConfig, Target

__all__ = [
    "KoreanPromptEncoder",
    "KoreanStudent",
    "KoreanStudentConfig",
    "PromptEmbeds",
    "Target",
]
