"""Custom actions served by `rasa run actions --actions actions` (run from bot/)."""
