"""The product: Korean text→image generation (`demo.generation`), prompt search (`demo.search`) and the web app
(`demo.web`); the modules at this level are the documented entry points (`python -m demo`, `demo.app`,
`python -m demo.generate`, `python -m demo.vector_search`)."""
