"""Builders the test modules share: protocol files, synthetic results stores and fresh `study` processes."""
