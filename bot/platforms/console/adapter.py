"""The console adapter: reads typed lines, prints what the bot says.

Interactive in a terminal, or driven from a pipe (`inloop run < script.txt`):
then each input line is echoed after its prompt so the transcript reads like a
chat, and at the end of input everything pending is delivered before exit.

In a terminal the input line is prompt_toolkit's (terminal.py): whatever is printed
meanwhile (a card, a log warning) goes above the input line, which is drawn again
below it with the half-typed text as it was; what is printed fits the terminal's width.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.clock import Clock
from bot.events import ChannelId, Event, Message, PersonId, local_part
from bot.platform import EventSink, PersonInfo
from bot.platforms.console.translate import (
    DIRECTIVES_HELP,
    PREFIX,
    Problem,
    Quit,
    SwitchChannel,
    SwitchPersona,
    fit,
    literal,
    parse_line,
    render,
)
from bot.views import Attachment, Card, Chart, View

if TYPE_CHECKING:
    from bot.platforms.console.terminal import Terminal

WELCOME = """\
Inloop console — try Inloop here, no Slack or Matrix account needed.
You are {persona} in #{channel}. Type lines as in a chat; bot commands start with {prefix}.
{directives}
A first walk-through:
  {prefix} team add support        (this channel becomes team support's channel)
  /mention Giulia: My order arrived broken
  {prefix} claim 1
  /as marta
  {prefix} claim 1                 (marta is told it is taken)
"""


class ConsolePlatform:
    name = "console"
    command_prefix = PREFIX
    pace_seconds = 0.0
    #: one person at a terminal: no limit to keep to
    account_limit = None
    #: a local terminal: nothing to lose touch with
    connected = True

    def __init__(
        self,
        clock: Clock,
        *,
        persona: str = "admin",
        channel: str = "general",
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        files: Path = Path("inloop-files"),
    ):
        self._clock = clock
        #: where charts are written, for the user to open
        self._files = files
        self._persona = persona
        #: the names spoken as in this run (`/as NAME`): the console's people
        self._personas = {persona.lower()}
        self._channel = channel
        self._stdin = stdin or sys.stdin
        if isinstance(self._stdin, io.TextIOWrapper):
            # A script saved in another encoding must not end the session: show U+FFFD instead.
            self._stdin.reconfigure(errors="replace")
        self._stdout = stdout or sys.stdout
        #: None in pipe mode (lines as long as they come)
        self._terminal: Terminal | None = None
        # Both ends a terminal: with output to a file, the pipe mode's transcript (prompt
        # and typed line) is what reads right there.
        if self._stdin.isatty() and self._stdout.isatty():
            # Imported here: prompt_toolkit is for a person at a terminal only.
            from bot.platforms.console.terminal import Terminal

            self._terminal = Terminal(self._stdout)
        # Message refs are stored with the cards and outlive this run: a new run must not
        # reuse one (its replies would hang from another run's card).
        self._run = uuid.uuid4().hex[:8]
        self._messages = 0
        self._delivered: dict[str, str] = {}
        self._hinted = False
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    async def start(self, sink: EventSink) -> None:
        welcome = WELCOME.format(
            persona=self._persona,
            channel=self._channel,
            prefix=PREFIX,
            directives=DIRECTIVES_HELP,
        )
        # its lines fitted to the terminal, then the empty line WELCOME ends with
        self._print("\n".join([*fit(welcome, self._columns()), ""]))
        self._task = asyncio.create_task(self._read(sink), name="console")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.finished.set()

    async def _read(self, sink: EventSink) -> None:
        try:
            # What the start queued (a reminder sent late after a downtime) comes before
            # the first prompt, not in the middle of the first answer.
            await sink.settle()
            if self._terminal is not None:
                await self._converse(sink)
            else:
                await self._follow(sink)
            await sink.settle()
        finally:
            self.finished.set()

    async def _follow(self, sink: EventSink) -> None:
        """Pipe mode: each line echoed after its prompt, plain text only."""
        lines = self._reader()
        while True:
            line = await lines.get()
            if not line:
                break
            if line.strip():
                self._print(self._prompt() + literal(line.rstrip("\n")))
            if not await self._take(line, sink):
                break

    async def _converse(self, sink: EventSink) -> None:
        """A terminal: lines read with editing and history, output above the input line."""
        assert self._terminal is not None
        while (line := await self._terminal.read(self._prompt())) is not None:
            if not await self._take(line, sink):
                return

    def _reader(self) -> asyncio.Queue[str]:
        """Lines from stdin, read by a daemon thread: a blocked read never holds up exit
        (the default executor would wait for the Enter key after Ctrl-C)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:
            while True:
                try:
                    line = self._stdin.readline()
                except (OSError, ValueError):  # stdin closed under us
                    line = ""
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                except RuntimeError:  # the loop has closed: Inloop is exiting
                    return
                if not line:
                    return

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        return queue

    async def _take(self, line: str, sink: EventSink) -> bool:
        parsed = parse_line(line, self._persona, self._channel, self._clock())
        match parsed:
            case None:
                return True
            case Quit():
                return False
            case Problem(text=text):
                self._print(text)
            case SwitchPersona(name=name):
                self._persona = name
                self._personas.add(name)
                self._print(f"(you are now {name})")
            case SwitchChannel(channel=channel):
                self._channel = channel
                self._print(f"(you are now in #{channel})")
            case _:
                await self._dispatch(parsed, sink)
        return True

    async def _dispatch(self, event: Event, sink: EventSink) -> None:
        if isinstance(event, Message) and not self._hinted:
            self._hinted = True
            self._print(
                f"(said in #{self._channel}; bot commands start with {PREFIX}, e.g. {PREFIX} help)"
            )
        await sink.handle(event)
        # Settle after each line so that a piped script reads in order.
        await sink.settle()

    # -- Platform ----------------------------------------------------------------------

    async def send(self, channel: ChannelId, view: View, key: str) -> str:
        if key in self._delivered:
            return self._delivered[key]
        # A card's ref carries its label, so that a thread can say which card it hangs
        # from ("#3", not "console-7"), in this run and in the next ones.
        ref = self._new_ref(view.title.split(" ", 1)[0][:40] if isinstance(view, Card) else "")
        self._delivered[key] = ref
        self._say(f"[{local_part(channel)}] ", view)
        return ref

    async def update(self, channel: ChannelId, message_ref: str, view: View, key: str) -> None:
        if key in self._delivered:
            return
        self._delivered[key] = message_ref
        self._say(f"[{local_part(channel)}] (card updated) ", view)

    def messages_per_update(self, view: View) -> int:
        return 1

    async def reply(self, channel: ChannelId, message_ref: str, view: View, key: str) -> str:
        if key in self._delivered:
            return self._delivered[key]
        ref = self._delivered[key] = self._new_ref("")
        thread = literal(message_ref.partition(" ")[2] or message_ref)
        self._say(f"[{local_part(channel)}] (thread of {thread}) ", view)
        return ref

    async def send_private(
        self, person: PersonId, view: View, key: str, context: ChannelId | None
    ) -> None:
        if key in self._delivered:
            return
        self._delivered[key] = ""
        self._say(f"[dm:{local_part(person)}] ", view)

    async def find_sent(
        self,
        target: str,
        key: str,
        *,
        since: datetime,
        thread: str | None = None,
        private: bool = False,
    ) -> str | None:
        # What this run printed; a terminal keeps no record across runs.
        return self._delivered.get(key)

    async def user_info(self, person: PersonId) -> PersonInfo:
        # Every console persona is somebody in the company trying Inloop out; a name
        # nobody has been (`reassign 1 @nobody_ever`) is nobody, not a new person.
        if local_part(person) not in self._personas:
            raise LookupError(person)
        return PersonInfo(display_name=literal(local_part(person)), is_staff=True)

    def _say(self, head: str, view: View) -> None:
        """`view` after `head`, its other lines under its first, all within the terminal."""
        columns = self._columns()
        width = None if columns is None else columns - len(head)
        self._print(_indent(head, self._show(view, width)))

    def _columns(self) -> int | None:
        return None if self._terminal is None else self._terminal.columns

    def _prompt(self) -> str:
        return f"{self._persona}@#{self._channel}> "

    def _show(self, view: View, width: int | None) -> str:
        """Terminal text for a view; a chart or a file is written to a file the user can open."""
        if not isinstance(view, Chart | Attachment):
            return render(view, width=width)
        self._files.mkdir(parents=True, exist_ok=True)
        path = (self._files / Path(view.filename).name).resolve()
        path.write_bytes(view.png if isinstance(view, Chart) else view.data)
        return render(view, str(path), width)

    def _new_ref(self, label: str) -> str:
        """`console-RUN-N`, and ` LABEL` for a card: unique across runs on one database."""
        self._messages += 1
        ref = f"console-{self._run}-{self._messages}"
        return f"{ref} {label}" if label else ref

    def _print(self, text: str) -> None:
        if self._terminal is not None:
            self._terminal.print(text)
            return
        self._stdout.write(text + "\n")
        self._stdout.flush()


def _indent(head: str, body: str) -> str:
    pad = " " * len(head)
    first, *rest = body.splitlines() or [""]
    return "\n".join([head + first, *(pad + line for line in rest)])
