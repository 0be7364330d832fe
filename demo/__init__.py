"""The demo: the Korean generation pipeline, prompt search, and (later) the web app."""
