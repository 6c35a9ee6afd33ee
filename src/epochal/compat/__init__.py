"""The APIs of the tools epochal grew from, as thin adapters over epochal's core.

Import the one you used, e.g. ``from epochal.compat import trace``; each module's docstring shows
the one-line change that moves a script over.
"""
