"""Engine behaviour over every store, on a fake clock (conftest.py)."""
