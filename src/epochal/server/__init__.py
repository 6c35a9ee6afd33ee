from epochal.server.app import create_app
from epochal.server.security import Access

__all__ = ["Access", "create_app"]
