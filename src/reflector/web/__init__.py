"""The web pages: templates, static files and the session cookie."""
