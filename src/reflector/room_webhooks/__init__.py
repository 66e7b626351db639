"""Outgoing webhooks: a room's events (transcript.completed, meeting.ended) sent, signed, to
the URL its owner set, with retries and a delivery log."""
