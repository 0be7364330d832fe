"""The documented entry point for `flask --app demo.app run` and `waitress-serve --call demo.app:create_app`."""

from demo.web import create_app

__all__ = ["create_app"]
