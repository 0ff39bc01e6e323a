"""The knowledge base the assistant answers from: reviewed entries per topic, language and country,
verified hotlines for the safety topics, and in-person information hubs per community.

- ``models``: the tables.
- ``entries``: entries, their append-only history, ``find_answer`` and stale reviews.
- ``hotlines``: verified hotlines and ``hotlines_for``.
- ``hubs``: information hubs and ``hubs_for``.
- ``seed``: loads ``data/knowledge/`` and the demo hubs, idempotently.
"""
