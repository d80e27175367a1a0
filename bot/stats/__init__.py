"""Team statistics: the ``statistik`` card, its weekday/hour chart, the weekly digest and the CSV report."""
