"""Outreach: awareness campaigns and polls sent to communities.

``models`` the tables and their lifecycles; ``schedules`` when runs happen, in each community's
own time zone; ``lifecycle`` the two-person approval, scheduling and the runs a planner picks up;
``content`` what is sent (text, templates, poll options, targets) and its checks; ``preview``
who would receive it, who would not and why, and what it would cost.

(The package is ``outreach`` rather than ``campaigns.campaigns``: one ``campaigns`` in an import
path is enough.)
"""
