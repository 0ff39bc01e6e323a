"""The topic ids shared by the assistant's intents, campaigns, the knowledge base and analytics.

Fixed in ``shared/TOPICS.md``; add a topic there first.
"""

from __future__ import annotations

from campaigns.errors import InvalidInput

TOPICS: tuple[str, ...] = (
    "regular_pathways",
    "labour_migration",
    "status_regularization",
    "asylum_protection",
    "documents_ids",
    "irregular_route_risks",
    "scams_fraud",
    "human_trafficking",
    "violence_gbv",
    "children_families",
    "missing_family_links",
    "health_services",
    "shelter_basic_needs",
    "legal_aid_rights",
    "return_reintegration",
    "emergencies_disasters",
    "remittances_money",
    "rumour_check",
    "info_hubs",
    "about_service",
)

CONVERSATION_INTENTS: tuple[str, ...] = (
    "greet",
    "goodbye",
    "thanks",
    "menu",
    "choose_language",
    "human_handover",
    "bot_challenge",
    "affirm",
    "deny",
    "out_of_scope",
)

# The verified hotline goes first, then the offer of a person.
SAFETY_TOPICS: frozenset[str] = frozenset(
    {"human_trafficking", "violence_gbv", "children_families"}
)


def validate_topic(value: str, *, field: str = "topic") -> str:
    topic = value.strip()
    if topic not in TOPICS:
        raise InvalidInput(f"unknown topic {value!r}: see TOPICS.md", field=field)
    return topic
