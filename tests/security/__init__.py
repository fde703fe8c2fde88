"""Regression tests of deployment security (issue 13)."""
