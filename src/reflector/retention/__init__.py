"""Retention: deleting raw recordings, derived audio and transcripts when their time comes."""
