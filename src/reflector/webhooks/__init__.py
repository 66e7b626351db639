"""Incoming platform webhooks: the event inbox (audit log), rejections and rate limits."""
