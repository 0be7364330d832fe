"""The embedded miniworld: a drawn world, its bilingual captions, and small models trained on it."""
