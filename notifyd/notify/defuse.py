"""Job-supplied text made harmless in a notification: defusing.

Everything that comes from the job (title, command, cwd, host, group, file
names, its output, errors) is defused so that it can never mention anyone
(a title of '@everyone' must not ping a lab), hide a link behind innocent
words, leave a code block, or start a line that looks like notifyd's own.
Defusing inserts zero-width spaces, which people do not see, rather than
backslashes, which email readers would.

    defuse(text)       anywhere in a message: no mention, link, tag, fence or block marker works
    line(value)        a field on a line of ours: one line, defused
    code(value)        a path or command as an inline code span
    code_block(text)   output as a fenced block it cannot close
"""

from __future__ import annotations

import re
from typing import Any

ZWSP = "\u200b"  # zero-width space: breaks a mention without changing what people read

# Mentions. @everyone/@here ping a Discord channel, @room a Matrix room (any
# spelling: Apprise matches them case-blind). Apprise's Discord plugin in embed
# mode (?format=markdown) turns every "@123" or "@&123" in the body into a real
# user or role ping, "<" or no "<", so the digits are cut off from the "@" too.
# "@name:server" is a Matrix user id.
_MENTION = re.compile(r"@(?=everyone|here|room|[!&]?\d|[\w.=/+-]+:[\w-])", re.IGNORECASE)
# <@123>, <@!123>, <@&role>, <#channel>, <:emoji:1>, Slack's <!here>, </slash:1>,
# and any HTML tag or comment: Matrix gets the markdown as HTML, raw tags included.
# A "<" ending a field is broken too: our own text may put a ":" after it.
_TAG = re.compile(r"<(?=[@#!&:/?A-Za-z]|$)")
# "[words](url)", "[words][ref]" and "[ref]: url" all need "]" right before
# "(", "[" or ":"; with a ZWSP between them they are plain brackets. A "]"
# ending a field gets one too, for the same reason.
_LINK = re.compile(r"\](?=[(\[:]|$)")
_SPOILER = re.compile(r"\|(?=\|)")  # Discord's ||hidden text||
# &#64;everyone would render as @everyone in Matrix HTML; "&#64" at the end of a
# field is one too when our own text puts a ";" after it.
_ENTITY = re.compile(r"&(?=#?\w+(?:;|$))")
_BACKTICKS = re.compile(r"`(?=`)")  # no run of two or more: nothing can open or close a fence
# A line starting with these would be a heading, quote, list, rule or fence of
# its own (or, for "=" and "-", turn the line above into a heading).
_LINE_START = re.compile(r"(^|\r)([^\S\r\n]*)(?=[#>=*+\-_|~`]|\d+[.)])", re.MULTILINE)  # "\r" ends lines too
# Inside a fenced block only "#" needs it: Apprise's Discord embeds (?format=markdown)
# split the body at every "#" after a line break and any whitespace (str.isspace),
# code block or not.
_HASH_START = re.compile(r"^([^\S\n]*)(?=#)")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")


def _defuse_inline(text: str) -> str:
    text = _MENTION.sub("@" + ZWSP, text)
    text = _TAG.sub("<" + ZWSP, text)
    text = _LINK.sub("]" + ZWSP, text)
    text = _SPOILER.sub("|" + ZWSP, text)
    text = _ENTITY.sub("&" + ZWSP, text)
    return _BACKTICKS.sub("`" + ZWSP, text)


def defuse(text: str) -> str:
    """Job-supplied text made harmless: no mention, link, tag, fence or block marker works.

    Only zero-width spaces are added: with them removed the text is unchanged.
    """
    return _LINE_START.sub(r"\1\2" + ZWSP, _defuse_inline(text))


def _one_line(text: str) -> str:
    """Job text that must stay on its line: line breaks and control characters become spaces."""
    parts = (part.strip() for part in _ANSI.sub("", text).splitlines())
    return _CONTROL.sub(" ", " ".join(part for part in parts if part))


def line(value: Any) -> str:
    """A job-supplied field for a line of ours: one line, defused."""
    return defuse(_one_line(str(value)))


def code(value: Any) -> str:
    """A job-supplied path or command as an inline code span (no markdown inside)."""
    text = _defuse_inline(_one_line(str(value)))
    # Runs of backticks are broken up above, so a double-backtick span can hold single ones.
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def code_block(text: str) -> list[str]:
    """Job output as the lines of a fenced code block that it cannot close."""
    lines = []
    for raw in text.split("\n"):
        # What a terminal would show: the last rewrite of a progress line, no colours.
        shown = _ANSI.sub("", raw.rstrip("\r")).rsplit("\r", 1)[-1]
        line = _defuse_inline(_CONTROL.sub(" ", shown).rstrip())
        lines.append(_HASH_START.sub(r"\1" + ZWSP, line))
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return ["```", *lines, "```"]
