from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from reflector.db.base import Base


class MetricCounter(Base):
    """A monotonic counter (or one series of a histogram) kept in the database, for events
    that happen in whichever process and leave no row of their own (SQS messages, pipeline
    step durations)."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    # The label set, as canonical JSON (sorted keys), "{}" for none.
    labels: Mapped[str] = mapped_column(String(500), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
