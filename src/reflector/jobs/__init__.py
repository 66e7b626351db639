"""The job engine: Celery with Redis when configured, a durable local queue otherwise."""
