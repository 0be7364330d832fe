"""Search: similar prompts in Korean or English, or by image, over the gallery of generated images.

`embeddings` (one CLIP space for Korean, English and images), `index` (`PromptIndex`: exact, then Annoy),
`store` (`GalleryStore`: SQLite records + image files), `service` (`SearchService`, the app-scoped object),
`importers` (csv/parquet prompt tables such as DiffusionDB), `seeding` (a first gallery), `cli`.
"""
