"""The shape of a language: one field per sentence Inloop says."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Texts:
    # -- generic -------------------------------------------------------------
    not_allowed: str
    unknown_command: str
    usage_intro: str
    help_header: str
    help_footer: str
    internal_error: str
    no_such_conversation: str
    bad_number: str
    # -- usage lines, keyed by command -------------------------------------------
    usage: dict[str, str]
    # -- statuses and card -------------------------------------------------------
    status_names: dict[str, str]
    card_title: str
    card_status: str
    card_owner: str
    card_nobody: str
    card_team: str
    card_no_team: str
    card_mentions: str
    card_more: str
    card_fallback: str
    button_claim: str
    button_replied: str
    button_resolve: str
    button_release: str
    button_reopen: str
    # -- claims ----------------------------------------------------------------
    claimed_you: str
    already_yours: str
    claimed_by_other: str
    is_resolved: str
    not_owner: str
    only_manager_unclaimed: str
    released: str
    released_by_manager: str
    not_claimed: str
    marked_replied: str
    resolved: str
    resolved_already: str
    reopened: str
    reopened_for_owner: str
    not_resolved: str
    reassigned: str
    reassigned_to_you: str
    reassigned_away: str
    reassign_not_staff: str
    unknown_person: str
    # -- queue / show --------------------------------------------------------------
    queue_mine: str
    queue_unclaimed: str
    queue_unclaimed_team: str
    queue_empty: str
    queue_line: str
    queue_more: str
    show_header: str
    show_mention: str
    show_history: str
    show_history_line: str
    audit_actions: dict[str, str]
    # -- intake ----------------------------------------------------------------
    followup_for_owner: str
    no_team_for_mention: str
    # -- admin -----------------------------------------------------------------
    team_added: str
    team_added_default: str
    team_adopted: str
    team_exists: str
    team_channel_taken: str
    team_unknown: str
    team_tags_set: str
    teams_none: str
    teams_line: str
    team_default_mark: str
    role_set: str
    role_told: str
    role_unknown: str
    role_last_admin: str
    lang_set: str
    lang_unknown: str
    # -- routing and feeds -----------------------------------------------------------
    route_by_tag: str
    route_by_word: str
    route_default: str
    route_nowhere: str
    watching: str
    watch_owner_channel: str
    unwatched: str
    not_watched: str
    feed_added: str
    feed_any_team: str
    feed_exists: str
    feed_bad_url: str
    feed_removed: str
    feed_unknown: str
    feeds_none: str
    feeds_line: str
    feed_failing: str
    feed_recovered: str
    # -- Slack and the Home overview --------------------------------------------------
    home_title: str
    home_mine: str
    home_mine_empty: str
    home_unclaimed: str
    home_unclaimed_empty: str
    home_not_staff: str
    slack_show_full: str
    slack_full_text_title: str
    slack_close: str
    slack_loading: str
    form_required: str
