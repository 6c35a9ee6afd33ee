"""Moving runs out of epochal: lossless CSV and JSON exports, and readers for them."""

from epochal.interop.export import export_csv, export_json, read_csv, read_json

__all__ = ["export_csv", "export_json", "read_csv", "read_json"]
