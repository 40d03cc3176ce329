"""Enrichment: process tree, container identity and runtime metadata."""
