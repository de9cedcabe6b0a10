"""Sample modules and a fake recorder for the instrumentation tests (tests/test_instrument*.py)."""
