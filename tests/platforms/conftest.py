from tests.fakes.scripted_http import scripted_http, scripted_http_server

__all__ = ["scripted_http", "scripted_http_server"]
