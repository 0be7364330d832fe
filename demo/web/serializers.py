"""Jobs, gallery records and search results as the JSON API answers them; URLs come from `url_for`."""

from __future__ import annotations

from flask import url_for

from demo.jobs.model import Job
from demo.search import service
from demo.search.service import SearchResult
from demo.search.store import Record


def image_url(name: str) -> str:
    """Where this app serves a gallery image (also the templates' `image_url`)."""
    return url_for("gallery.image", name=name)


def record_json(record: Record) -> dict:
    return service.record_json(record, image_url)


def result_json(result: SearchResult) -> dict:
    return result.as_json(image_url)


def job_json(job: Job, position: int) -> dict:
    output = job.output
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "step": job.step,
        "total_steps": job.total_steps,
        "queue_position": position,
        "images": [image_url(name) for name in output.images] if output else [],
        "seeds": output.seeds if output else [],
        "notes": output.notes if output else [],
        "error": job.error,
        "cancelled": job.cancelled,
        "prompt": job.request.prompt,
    }
