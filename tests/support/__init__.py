"""Shared test machinery: a real gateway server on a loopback port, and model fixtures."""
