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
    #: a consultant cannot claim: their footer names advice requests instead
    help_footer_consultant: str
    help_unknown: str
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
    card_nobody_resolved: str
    card_team: str
    card_no_team: str
    card_mentions: str
    card_more: str
    card_fallback: str
    button_claim: str
    #: shown after the claim command where a card has no buttons (Matrix: a reaction)
    button_claim_also: str
    button_replied: str
    button_resolve: str
    button_release: str
    button_reopen: str
    # -- burst card: new conversations a channel cannot show one by one yet ---------
    #: "{count} new mentions in the last {minutes} min"
    burst_title: str
    #: one topic's share, e.g. "12 refund"
    burst_topic: str
    #: the topic of mentions that came without one
    burst_no_topic: str
    #: under the summary: the cards follow, every conversation is claimable now
    burst_text: str
    burst_oldest: str
    #: the burst is over: every card is posted
    burst_done: str
    button_claim_next: str
    button_show_list: str
    #: the owner asks an outside expert about the conversation (a form in Slack)
    button_ask: str
    form_ask_title: str
    form_ask_submit: str
    form_ask_question: str
    #: what the command still needs, where a button only shows what to type
    form_ask_placeholder: str
    #: the consultant answers an advice request (a form in Slack)
    button_answer: str
    form_answer_title: str
    form_answer_submit: str
    form_answer_text: str
    form_answer_placeholder: str
    #: a weekly block of dialogue time, from the Home tab (a form in Slack)
    button_commit: str
    form_commit_title: str
    form_commit_submit: str
    form_commit_days: str
    form_commit_time: str
    form_commit_duration: str
    form_commit_tz: str
    form_commit_placeholder: str
    # -- claims ----------------------------------------------------------------
    claimed_you: str
    #: `claim next` with nothing unclaimed
    claim_next_none: str
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
    reassigned_already: str
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
    #: "{count} waiting in {team}": one team's share of `queue_empty_for`/`queue_elsewhere`
    queue_waiting_in: str
    #: nothing in the person's teams (`teams`), but some in others (`elsewhere`)
    queue_empty_for: str
    queue_elsewhere: str
    show_header: str
    show_mention: str
    show_history: str
    show_history_line: str
    #: a history line's action, by the audit log's action name
    audit_actions: dict[str, str]
    #: the same when the entry has a detail (`{detail}`: a request id, a team, a person)
    audit_details: dict[str, str]
    # -- intake ----------------------------------------------------------------
    followup_for_owner: str
    no_team_for_mention: str
    # -- admin -----------------------------------------------------------------
    team_added: str
    team_added_default: str
    team_adopted_one: str
    team_adopted: str
    team_exists: str
    team_name_reserved: str
    team_channel_taken: str
    team_unknown: str
    team_tags_set: str
    team_tags_cleared: str
    teams_none: str
    teams_line: str
    team_default_mark: str
    team_which: str
    team_joined: str
    team_already_member: str
    team_left: str
    team_not_member: str
    team_members_list: str
    team_members_set: str
    team_members_none: str
    # -- targets, working hours, on duty and escalation (`team target`, `team hours`) ----
    #: a team's targets: `claim`, `reply` are durations, `hours` is hours_always/hours_window
    team_targets: str
    hours_always: str
    hours_window: str
    bad_target: str
    bad_hours: str
    #: the field a private copy of a new card has for the on-duty person it is offered to
    offer_label: str
    offer_reason: str
    offer_fallback: str
    #: under one card in the team channel; `duty` is nudge_on_duty or nudge_nobody_on_duty
    nudge_claim_one: str
    #: several conversations at once in the team channel: a header, lines, the duty line
    nudge_claim_many: str
    nudge_claim_line: str
    nudge_on_duty: str
    nudge_nobody_on_duty: str
    #: to an owner, privately: a header, then one line per conversation
    nudge_owner_header: str
    nudge_owner_line: str
    #: to managers, privately, at twice a target: a header, then late_* lines
    nudge_managers_header: str
    late_unclaimed: str
    late_unreplied: str
    escalations_header: str
    escalations_none: str
    role_set: str
    role_unchanged: str
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
    #: a file a customer sent in a watched channel, as a line of the mention's text
    attached_file: str
    attached_file_unnamed: str
    watch_owner_channel: str
    unwatched: str
    not_watched: str
    feed_added: str
    feed_any_team: str
    feed_exists: str
    feed_bad_url: str
    #: `feed add` fetched the address once and found no feed there (error: the reason)
    feed_refused: str
    feed_removed: str
    feed_unknown: str
    feeds_none: str
    feeds_line: str
    feed_no_title: str
    feed_not_polled: str
    feed_working: str
    feed_failing_state: str
    feed_failing: str
    #: a channel that takes no more messages from the bot (`place`: undeliverable_team
    #: or the channel's id)
    undeliverable: str
    undeliverable_team: str
    feed_recovered: str
    # -- customers (issue 15) -------------------------------------------------------
    #: the card's fields: who the customer is to us
    card_customer: str
    card_returning: str
    card_returning_with: str
    card_relationship: str
    card_relationship_owner: str
    card_relationship_held: str
    #: a status as a word inside a sentence ("… with marta, resolved")
    status_words: dict[str, str]
    relationship_offer: str
    relationship_held: str
    relationship_told: str
    customer_bad_ref: str
    customer_unknown: str
    customer_consultant_only: str
    customer_title: str
    customer_identities: str
    customer_owner_set: str
    customer_owner_default: str
    customer_owner_none: str
    customer_language: str
    customer_language_unknown: str
    customer_conversations: str
    customer_conversation_line: str
    customer_advice: str
    customer_advice_line: str
    customer_no_advice: str
    customer_linked: str
    customer_already_one: str
    customer_unlinked: str
    customer_not_linked: str
    customer_owner_changed: str
    customer_owner_cleared: str
    customer_owner_not_allowed: str
    customer_owner_not_staff: str
    # -- the customer's rights over their data (issue 15 §4) -----------------------------
    customer_export_ready: str
    customer_export_title: str
    customer_erase_preview: str
    customer_erase_how: str
    customer_erased: str
    customer_erased_ref: str
    #: an erased conversation's customer, where the name was (card title, `show N`)
    erased_customer: str
    card_erased: str
    digest_continuity: str
    # -- advice (issue 7) ----------------------------------------------------------
    card_advice: str
    button_take: str
    card_advice_value: str
    thread_label: str
    advice_bad_id: str
    advice_unknown: str
    advice_no_pool: str
    advice_not_consultant: str
    advice_no_question: str
    advice_asked: str
    advice_pool_name: str
    advice_card_title: str
    advice_card_asked_by: str
    advice_card_question: str
    advice_card_how: str
    advice_for_you: str
    advice_taken_you: str
    advice_taken_pool: str
    advice_already_taken: str
    advice_not_yours: str
    advice_is_closed: str
    advice_for_owner: str
    advice_thread_note: str
    advice_sent: str
    advice_followup: str
    advice_followup_sent: str
    advice_rated: str
    advice_rate_unanswered: str
    advice_closed: str
    advice_closed_for_consultant: str
    advice_none: str
    advice_to_answer: str
    advice_waiting: str
    advice_line: str
    #: a consultant's list: the pool's untaken requests, each with how to take it
    advice_in_pool: str
    advice_pool_line: str
    #: a request's state as its owner reads it, and as its consultant does
    advice_states: dict[str, str]
    advice_states_for_you: dict[str, str]
    pool_set: str
    consultant_scope: str
    advice_reminder: str
    advice_reminder_pool: str
    advice_still_open: str
    # -- digest (issue 8) ----------------------------------------------------------------
    digest_title: str
    digest_people: str
    digest_person: str
    digest_legend: str
    digest_commitment: str
    #: given more than committed: a multiple of it, not "kept 350%"
    digest_commitment_over: str
    digest_uncommitted: str
    digest_sessions: str
    digest_session_names: dict[str, str]
    digest_consultants: str
    digest_consultant: str
    digest_teams: str
    digest_team: str
    #: a team's members, under its line in the digest
    digest_members: str
    digest_no_members: str
    digest_unclaimed: str
    digest_nothing_unclaimed: str
    digest_nobody: str
    digest_none: str
    digest_bad_week: str
    digest_unknown_team: str
    digest_cli_bad_week: str
    digest_cli_unknown_team: str
    digest_chart_title: str
    #: legend committed, legend given, the minutes axis, the mentions panel's title
    digest_chart_labels: tuple[str, str, str, str]
    digest_chart_people: str
    digest_chart_people_top: str
    digest_chart_no_data: str
    #: the people panel of one team's chart: commitments are not counted by team
    digest_chart_team_time: str
    #: the chart's heading when it is not one team's
    digest_chart_whole: str
    managers_set: str
    # -- commitments (weekly dialogue time) ------------------------------------------
    day_names: tuple[str, ...]
    month_names: tuple[str, ...]
    days_weekdays: str
    days_daily: str
    bad_days: str
    bad_time: str
    bad_duration: str
    bad_log_duration: str
    bad_timezone: str
    bad_date: str
    date_past: str
    commit_made: str
    commitments_none: str
    commitments_none_other: str
    commitments_header: str
    commitment_line: str
    commitment_last: str
    commitment_away: str
    uncommitted: str
    no_such_commitment: str
    bad_commitment: str
    away_set: str
    back_set: str
    back_not_away: str
    logged: str
    logged_on: str
    reminder_title: str
    reminder_fallback: str
    reminder_late: str
    reminder_snoozed: str
    reminder_mine: str
    reminder_unclaimed: str
    reminder_unclaimed_team: str
    reminder_empty: str
    field_length: str
    field_block: str
    button_start: str
    button_skip: str
    button_snooze: str
    checkin_title: str
    checkin_text: str
    checkin_fallback: str
    button_done: str
    button_partial: str
    button_skipped: str
    block_started: str
    block_snoozed: str
    block_skipped: str
    block_done: str
    block_partial: str
    partial_how_much: str
    bad_partial: str
    no_such_block: str
    bad_block: str
    block_closed: str
    outcome_names: dict[str, str]
    # -- Slack and the Home overview --------------------------------------------------
    home_title: str
    home_mine: str
    home_mine_empty: str
    home_unclaimed: str
    #: the waiting conversations of the person's teams
    home_unclaimed_teams: str
    #: the section saying how many wait in the teams the person is not in
    home_elsewhere: str
    home_elsewhere_text: str
    home_unclaimed_empty: str
    home_not_staff: str
    home_title_consultant: str
    home_advice: str
    home_advice_empty: str
    slack_show_full: str
    slack_full_text_title: str
    slack_close: str
    slack_loading: str
    form_required: str
