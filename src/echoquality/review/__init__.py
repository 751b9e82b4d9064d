"""EchoQuality review workspace: a local web app over one inference run (gallery, clip page,
labels in SQLite, CSV/JSON export) and a self-contained HTML report.

``create_app`` lives in :mod:`echoquality.review.app` (needs FastAPI); :mod:`.report` needs only Jinja2.
"""
