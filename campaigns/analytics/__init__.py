"""Engagement analytics: rollups built incrementally from the event tables, and the queries,
suppression, insights and CSV export the API and the dashboard read.  See docs/analytics.md.

Public entry points (signatures are stable; the dashboard calls them):

- ``filters.make_filters`` → ``Filters``
- ``queries.campaign_metrics / campaign_failures / community_metrics / topic_metrics /
  poll_metrics`` → ``suppression.Table``
- ``insights.overview / unanswered_questions / spike_alerts / stale_entries /
  lowest_feedback_topics``
- ``export.table_csv``
- ``rollup.run_rollup`` (the beat task ``analytics.rollup``)
"""
