"""Catalogue rules: one module per part of what operators publish and tourists read."""
