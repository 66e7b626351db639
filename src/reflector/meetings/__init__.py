"""Meetings of a room on its platform: creation, participants, sessions and expiry."""
