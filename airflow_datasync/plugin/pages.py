"""HTML pages of the DataSync UI (filled by the pages work; included at the app root by plugin/app.py)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
