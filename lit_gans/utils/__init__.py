"""Small helpers shared by callbacks and entry points."""
