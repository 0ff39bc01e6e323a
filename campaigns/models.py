"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from campaigns.assistant.models import (
    ConversationState,
    Feedback,
    Handover,
    Turn,
    UnansweredQuestion,
)
from campaigns.audit import AuditEvent
from campaigns.communities import Community
from campaigns.contacts.models import ConsentEvent, Contact, ContactCommunity
from campaigns.db import Base
from campaigns.knowledge.models import Hotline, InfoHub, KnowledgeEntry, KnowledgeRevision
from campaigns.messaging.models import Message, MessageStatusEvent, Sender
from campaigns.organizations.models import ApiToken, Organization, User
from campaigns.outreach.engagement import LinkClick, PollResponse, TrackedLink
from campaigns.outreach.models import (
    Campaign,
    CampaignCommunity,
    CampaignContent,
    CampaignDelivery,
    CampaignRun,
    PollOption,
)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Campaign",
    "CampaignCommunity",
    "CampaignContent",
    "CampaignDelivery",
    "CampaignRun",
    "Community",
    "ConsentEvent",
    "Contact",
    "ContactCommunity",
    "ConversationState",
    "Feedback",
    "Handover",
    "Hotline",
    "InfoHub",
    "KnowledgeEntry",
    "KnowledgeRevision",
    "LinkClick",
    "Message",
    "MessageStatusEvent",
    "Organization",
    "PollOption",
    "PollResponse",
    "Sender",
    "TrackedLink",
    "Turn",
    "UnansweredQuestion",
    "User",
]
