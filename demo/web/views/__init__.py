"""The web app's blueprints: one per page family (generate, search, gallery) and the JSON API that mirrors them."""
