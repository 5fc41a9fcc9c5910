"""pytest fixtures of the test bed."""
