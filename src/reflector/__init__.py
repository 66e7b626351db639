"""Reflector: a self-hosted service that gives video meetings a memory."""

__version__ = "0.1.0"
