"""Callbacks and loggers that record runs from other training frameworks."""
