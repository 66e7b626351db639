"""Rooms: a named place to meet, backed by a video platform."""
