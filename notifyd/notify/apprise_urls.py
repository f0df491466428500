"""An Apprise URL to its plugin, importing that one plugin instead of all ~220.

Apprise's own `Apprise.instantiate()` first imports every plugin module to
build its table of schemes: ~110 ms and ~17 MB that a watcher would then keep
for its whole life (bench/: idle RSS). For the services labs use, the module
is known from the scheme (or, for a pasted https:// webhook, from the host),
so only it is imported; the result is the same plugin object Apprise would
build (tests/e2e/test_footprint.py checks each against Apprise's own). Any
other URL, and any URL the one plugin refuses, goes through Apprise's full
loader as before.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

# scheme -> module under apprise.plugins
BY_SCHEME = {
    "json": "custom_json", "jsons": "custom_json",
    "form": "custom_form", "forms": "custom_form",
    "xml": "custom_xml", "xmls": "custom_xml",
    "discord": "discord",
    "slack": "slack",
    "matrix": "matrix", "matrixs": "matrix",
    "mailto": "email", "mailtos": "email",
    "ntfy": "ntfy", "ntfys": "ntfy",
    "tgram": "telegram",
    "mmost": "mattermost", "mmosts": "mattermost",
    "rocket": "rocketchat", "rockets": "rocketchat",
    "zulip": "zulip",
    "gotify": "gotify", "gotifys": "gotify",
    "pover": "pushover",
}
# host of a service's own https:// URL (a webhook pasted as is) -> module
BY_HOST = {
    "discord.com": "discord", "discordapp.com": "discord",
    "hooks.slack.com": "slack",
    "api.telegram.org": "telegram",
    "ntfy.sh": "ntfy",
}


def protocols(cls: Any) -> set[str]:
    """The URL schemes an Apprise plugin (class or instance) serves."""
    found: set[str] = set()
    for attr in ("protocol", "secure_protocol"):
        value = getattr(cls, attr, None)
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, (tuple, list)):
            found.update(v for v in value if isinstance(v, str))
    return found


def _plugin_class(module_name: str, scheme: str | None) -> Any:
    """The plugin class in apprise.plugins.<module_name> (serving `scheme` if given), or None."""
    from apprise.plugins.base import NotifyBase

    try:
        module = importlib.import_module(f"apprise.plugins.{module_name}")
    except ImportError:  # another Apprise version: the full loader knows
        return None
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, NotifyBase) and value is not NotifyBase
                and protocols(value) and (scheme is None or scheme in protocols(value))):
            return value
    return None


def instantiate(apprise: Any, url: str) -> Any:
    """The plugin for `url`, as `apprise.Apprise.instantiate(url)` returns it (None if unusable)."""
    plugin = _direct(apprise, url)
    return plugin if plugin is not None else apprise.Apprise.instantiate(url)


def _direct(apprise: Any, url: str) -> Any:
    scheme, sep, _ = url.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    # As Apprise's url_to_dict does: a Matrix room '#name' is not a fragment.
    fixed = url.replace("/#", "/%23")
    if scheme in BY_SCHEME:
        cls = _plugin_class(BY_SCHEME[scheme], scheme)
        results = cls.parse_url(fixed) if cls is not None else None
    elif scheme in ("http", "https"):
        module = BY_HOST.get((urlsplit(url).hostname or "").lower())
        cls = _plugin_class(module, None) if module else None
        results = cls.parse_native_url(fixed) if cls is not None else None
        if results and results.get("schema") not in protocols(cls):
            return None
    else:
        return None
    if not results or cls is None or not cls.enabled:
        return None
    results["tag"] = set()
    results["asset"] = apprise.AppriseAsset()
    try:
        plugin = cls(**results)
    except Exception:  # Apprise logs why and returns None; the full loader will say it again
        return None
    return plugin if plugin.enabled else None
