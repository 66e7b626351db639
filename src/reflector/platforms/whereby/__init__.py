"""Whereby: REST client, webhook signatures and payloads, and the VideoPlatform implementation."""
