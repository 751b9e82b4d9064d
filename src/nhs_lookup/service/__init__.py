"""HTTP service and mapping-review web app for the NHS lookup engine (``nhs-lookup serve``).

``create_app(settings)`` builds the FastAPI app: single and batch lookups, persistent batch jobs,
a review workflow with remembered decisions, exports (CSV / JSON / FHIR R4 ConceptMap) and a
server-rendered web app at ``/``.
"""

from __future__ import annotations

from nhs_lookup.service.settings import ReviewRules, ServiceSettings

__all__ = ["ReviewRules", "ServiceSettings", "create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy wrapper keeps imports light
    """Build the FastAPI app (see :func:`nhs_lookup.service.api.create_app`)."""
    from nhs_lookup.service.api import create_app as _create_app

    return _create_app(*args, **kwargs)
