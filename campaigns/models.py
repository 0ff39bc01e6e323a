"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from campaigns.analytics.models import (
    CampaignDay,
    CampaignFailure,
    CommunityDay,
    ContactDay,
    HandoverClose,
    MessageStage,
    PollAnswer,
    PollDay,
    Reply,
    TopicDay,
    TopicTotalDay,
    Watermark,
)
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
from campaigns.web_auth.models import AuthFailure, WebSession

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuthFailure",
    "Base",
    "Campaign",
    "CampaignCommunity",
    "CampaignContent",
    "CampaignDay",
    "CampaignDelivery",
    "CampaignFailure",
    "CampaignRun",
    "Community",
    "CommunityDay",
    "ConsentEvent",
    "Contact",
    "ContactCommunity",
    "ContactDay",
    "ConversationState",
    "Feedback",
    "Handover",
    "HandoverClose",
    "Hotline",
    "InfoHub",
    "KnowledgeEntry",
    "KnowledgeRevision",
    "LinkClick",
    "Message",
    "MessageStage",
    "MessageStatusEvent",
    "Organization",
    "PollAnswer",
    "PollDay",
    "PollOption",
    "PollResponse",
    "Reply",
    "Sender",
    "TopicDay",
    "TopicTotalDay",
    "TrackedLink",
    "Turn",
    "UnansweredQuestion",
    "User",
    "Watermark",
    "WebSession",
]
