"""Outputs rendered from the results model: HTML report, JUnit XML, CI summary, merge."""
