"""The forms buttons open where the platform has them (Slack modals).

Submitted, a form is an ordinary command: the form only asks for what the command
needs, so every rule stays with the command's handler.
"""

from __future__ import annotations

from bot.messages import Texts
from bot.views import Form, FormField


def forms(texts: Texts) -> dict[str, Form]:
    ask = Form(
        form_id="ask",
        title=texts.form_ask_title,
        submit=texts.form_ask_submit,
        fields=(FormField("question", texts.form_ask_question, multiline=True, max_length=2000),),
        command="ask {value} {question}",
    )
    answer = Form(
        form_id="answer",
        title=texts.form_answer_title,
        submit=texts.form_answer_submit,
        fields=(FormField("advice", texts.form_answer_text, multiline=True, max_length=2000),),
        command="answer {value} {advice}",
    )
    commit = Form(
        form_id="commit",
        title=texts.form_commit_title,
        submit=texts.form_commit_submit,
        fields=(
            FormField("days", texts.form_commit_days, max_length=60, one_word=True),
            FormField("start", texts.form_commit_time, max_length=5, one_word=True),
            FormField("duration", texts.form_commit_duration, max_length=10, one_word=True),
            FormField("tz", texts.form_commit_tz, required=False, max_length=64, one_word=True),
        ),
        # an empty time zone leaves a trailing space: the command reads it as none given
        command="commit {days} {start} {duration} {tz}",
    )
    return {form.form_id: form for form in (ask, answer, commit)}
