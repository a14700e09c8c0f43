"""kflow benchmarks: they print figures, they assert nothing."""
