"""Generation: Korean prompt → ko_clip embeddings → base text→image (or image→image) → refiner.

`config` (YAML → `GeneratorConfig`), `request` (what callers ask for; no torch), `pipeline` (`ImageGenerator`, the
one implementation the app, the CLI and evaluation all run), `images` (PNG metadata, upload checks).
"""
