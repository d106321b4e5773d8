"""pytest configuration shared by every test file (trio_mode is set in pyproject)."""
