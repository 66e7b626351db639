"""Recordings: storage, intake (SQS, webhooks, bucket reconciler) and their lifecycle."""
