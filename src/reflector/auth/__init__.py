"""Users, API tokens and the current-user dependency."""
