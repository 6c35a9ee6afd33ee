from epochal.server.app import create_app
from epochal.server.security import Access

__all__ = ["create_app", "Access"]
