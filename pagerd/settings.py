"""The typed configuration pagerd runs with, read from one YAML file.

The file is Alertmanager's configuration (route, receivers, inhibit_rules,
time_intervals) plus pagerd's own sections (server, integrations, severity, components).
Every problem is collected with its file and line, and a config with any problem is
refused whole: a running daemon keeps its old one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pagerd.durations import parse_duration
from pagerd.errors import ConfigError, ConfigErrors, refuse_unknown
from pagerd.oncall.config import parse_oncall
from pagerd.oncall.directory import OnCall
from pagerd.routing.config import Routing, parse_routing
from pagerd.routing.severity import Severities, parse_severities
from pagerd.secrets import env_name, resolve_secret
from pagerd.settings_paging import PagingConfig, parse_paging
from pagerd.settings_statuspage import StatusPageConfig, parse_status_page
from pagerd.yamlsource import Position, YAMLSourceError, load, position

DEFAULT_LISTEN = "127.0.0.1:9797"
SYSTEM_CONFIG = Path("/etc/pagerd/pagerd.yml")
INTEGRATION_TYPES = {"alertmanager", "azure", "pagerduty"}
TOP_LEVEL = {
    "global", "server", "integrations", "severity", "components", "route", "receivers",
    "inhibit_rules", "time_intervals", "mute_time_intervals", "templates",
    "users", "teams", "schedules", "escalation_policies", "paging", "status_page",
}


@dataclass(frozen=True)
class EntraConfig:
    """Microsoft Entra ID bearer tokens accepted by an Azure integration (secure webhook)."""

    jwks_url: str
    issuers: tuple[str, ...]
    audiences: tuple[str, ...]
    role: str | None = None


@dataclass(frozen=True)
class Integration:
    """An intake endpoint and its token (None: generated into the state dir at start)."""

    name: str
    type: str
    token: str | None
    entra: EntraConfig | None = None


@dataclass(frozen=True)
class Component:
    """Something that can break, with the team that owns it and whom to call."""

    name: str
    team: str
    contacts: tuple[dict[str, str], ...] = ()
    runbook_url: str = ""
    escalation_policy: str | None = None
    # Platform vendors with their support plan: name, support_level, phone, case_url.
    vendors: tuple[dict[str, str], ...] = ()

    def page_contacts(self) -> tuple[dict[str, str], ...]:
        """Key contacts and vendors, as a page shows them."""
        vendors = tuple({"name": v.get("name", ""), "role": f"vendor {v.get('support_level', '')}"
                         .strip(), **{k: v[k] for k in ("phone", "case_url") if k in v}}
                        for v in self.vendors)
        return self.contacts + vendors


@dataclass(frozen=True)
class WebhookConfig:
    """A webhook destination of a receiver."""

    url: str
    send_resolved: bool = True
    secret: str | None = None
    timeout: float = 10.0
    max_alerts: int = 0


@dataclass(frozen=True)
class ChatConfig:
    """A chat channel's incoming webhook (Slack or Microsoft Teams)."""

    kind: str
    url: str = field(repr=False)
    send_resolved: bool = True


@dataclass(frozen=True)
class ReceiverConfig:
    """A named notification destination, as in Alertmanager."""

    name: str
    webhooks: tuple[WebhookConfig, ...] = ()
    chats: tuple[ChatConfig, ...] = ()

    @property
    def has_notifier(self) -> bool:
        """False for Alertmanager's "null receiver": alerts are kept, nobody is notified."""
        return bool(self.webhooks or self.chats)


@dataclass(frozen=True)
class IntakeProcesses:
    """Intake in processes of its own: they journal what they accept, the daemon ingests it.

    Off (0 processes) by default. On a busy pipeline they serve the Alertmanager and Azure
    endpoints on their own port, using the cores one Python process cannot.
    """

    processes: int = 0
    listen: str = ""
    # Alerts accepted and not yet ingested, per process, past which it answers 503: about
    # a second of the daemon's work, so a page waits in the journal for seconds at most
    # (a sender keeps what it was refused, and retries).
    backlog: int = 20_000
    # No `intake_listen` in the config (`listen` is then empty): the port after the
    # daemon's own, which the daemon works out from the address it serves on (`--listen`,
    # else the `listen` it started with).
    derived: bool = False


@dataclass(frozen=True)
class Settings:
    """A whole, valid configuration."""

    file: str
    digest: str
    listen: str
    external_url: str
    admin_token: str | None
    max_body_bytes: int
    integrations: dict[str, Integration]
    severities: Severities
    components: dict[str, Component]
    receivers: dict[str, ReceiverConfig]
    routing: Routing
    oncall: OnCall
    paging: PagingConfig
    status_page: StatusPageConfig | None
    intake: IntakeProcesses = field(default_factory=IntakeProcesses)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def default_config_text() -> str:
    """The configuration shipped inside the package."""
    return (resources.files("pagerd.defaults") / "pagerd.yml").read_text()


def locate(explicit: str | None) -> tuple[str, str]:
    """The config to run with: --config, $PAGERD_CONFIG, /etc/pagerd, else the packaged one.

    Returns (file name for messages, text).
    """
    chosen = explicit or os.environ.get("PAGERD_CONFIG")
    if chosen:
        return chosen, Path(chosen).read_text()
    if SYSTEM_CONFIG.exists():
        return str(SYSTEM_CONFIG), SYSTEM_CONFIG.read_text()
    return "<default pagerd.yml>", default_config_text()


def split_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT) as a pair."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def next_port(listen: str) -> str:
    """HOST:PORT+1 of a valid HOST:PORT (an IPv6 host keeps its brackets): where intake
    processes listen when the config does not say."""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + 1}"


def load_settings(file: str, text: str) -> Settings:
    """Parse and validate a config text; raises ConfigErrors with every problem found."""
    try:
        doc = load(text, file)
    except YAMLSourceError as exc:
        raise ConfigErrors([ConfigError(exc.position, exc.reason)]) from exc
    if doc is None:
        doc = load("{}", file)
    if not isinstance(doc, dict):
        raise ConfigErrors([ConfigError(Position(file, 1), "config must be a mapping")])
    errors: list[ConfigError] = []
    settings = _build(doc, file, text, errors)
    if errors or settings is None:
        raise ConfigErrors(errors)
    return settings


def _build(doc: dict[str, Any], file: str, text: str, errors: list[ConfigError]) -> Settings | None:
    refuse_unknown(doc, TOP_LEVEL, errors)
    base_dir = Path(file).parent if not file.startswith("<") else Path.cwd()
    server = _mapping(doc, "server", errors)
    refuse_unknown(server, {"listen", "external_url", "admin_token", "admin_token_file",
                            "max_body_bytes", "intake_processes", "intake_listen",
                            "intake_backlog"}, errors)
    listen = str(server.get("listen", DEFAULT_LISTEN))
    external_url = str(server.get("external_url", f"http://{listen}")).rstrip("/")
    admin_token = resolve_secret(server, "admin_token", env_name("admin", "token"), errors,
                                 base_dir)
    max_body = server.get("max_body_bytes", 4 * 1024 * 1024)
    if not isinstance(max_body, int) or max_body <= 0:
        errors.append(ConfigError(position(server, "max_body_bytes"), "must be a positive integer"))
        max_body = 1
    intake = _intake_processes(server, listen, errors)

    integrations = _integrations(doc, errors, base_dir)
    oncall = _oncall(doc, errors)
    policies = set(oncall.policies) if oncall else set()
    severities = parse_severities(doc.get("severity"), errors, policies)
    components = _components(doc, errors, oncall, policies)
    receivers = _receivers(doc, errors, base_dir)
    paging = parse_paging(doc.get("paging"), errors, base_dir)
    status_page = parse_status_page(doc.get("status_page"), errors, base_dir, set(components))
    try:
        routing = parse_routing(
            doc, receivers=set(receivers), owners=set(components),
            severities=severities.names(), policies=policies,
        )
    except ConfigErrors as exc:
        errors.extend(exc.errors)
        return None
    if oncall is None:
        return None
    comms = paging.comms_schedule
    if comms is not None and comms not in oncall.schedules:
        errors.append(ConfigError(position(doc.get("paging"), "comms_schedule"),
                                  f"unknown schedule {comms!r}"))
        return None
    return Settings(
        file=file, digest=hashlib.sha256(text.encode()).hexdigest()[:16], listen=listen,
        external_url=external_url, admin_token=admin_token, max_body_bytes=max_body,
        integrations=integrations, severities=severities, components=components,
        receivers=receivers, routing=routing, oncall=oncall, paging=paging,
        status_page=status_page, intake=intake, raw=doc,
    )


def _intake_processes(server: dict[str, Any], listen: str, errors: list[ConfigError]
                      ) -> IntakeProcesses:
    processes = server.get("intake_processes", 0)
    if not isinstance(processes, int) or isinstance(processes, bool) or not 0 <= processes <= 64:
        errors.append(ConfigError(position(server, "intake_processes"),
                                  "must be an integer from 0 to 64"))
        return IntakeProcesses()
    backlog = server.get("intake_backlog", IntakeProcesses.backlog)
    if not isinstance(backlog, int) or isinstance(backlog, bool) or backlog <= 0:
        errors.append(ConfigError(position(server, "intake_backlog"),
                                  "must be a positive integer"))
        return IntakeProcesses()
    if "intake_listen" not in server:
        # The daemon works it out from the address it serves on (see `derived`).
        return IntakeProcesses(processes, backlog=backlog, derived=True)
    intake_listen = str(server["intake_listen"])
    if processes and not intake_listen.rpartition(":")[2].isdigit():
        errors.append(ConfigError(position(server, "intake_listen"),
                                  "must be HOST:PORT, a port of its own"))
    elif processes and intake_listen == listen:
        errors.append(ConfigError(position(server, "intake_listen"),
                                  "must differ from listen: intake processes have a port of "
                                  "their own"))
    return IntakeProcesses(processes, intake_listen, backlog=backlog)


def _oncall(doc: dict[str, Any], errors: list[ConfigError]) -> OnCall | None:
    try:
        return parse_oncall(doc)  # type: ignore[arg-type]
    except ConfigErrors as exc:
        errors.extend(exc.errors)
        return None


def _mapping(doc: dict[str, Any], key: str, errors: list[ConfigError]) -> dict[str, Any]:
    node = doc.get(key)
    if node is None:
        return load("{}", getattr(doc, "file", "<string>"))
    if not isinstance(node, dict):
        errors.append(ConfigError(position(doc, key), f"{key} must be a mapping"))
        return {}
    return node


def _list(doc: dict[str, Any], key: str, errors: list[ConfigError]) -> list[Any]:
    node = doc.get(key)
    if node is None:
        return []
    if not isinstance(node, list):
        errors.append(ConfigError(position(doc, key), f"{key} must be a list"))
        return []
    return node


def _integrations(
    doc: dict[str, Any], errors: list[ConfigError], base_dir: Path
) -> dict[str, Integration]:
    node = _mapping(doc, "integrations", errors)
    found: dict[str, Integration] = {}
    for name, item in node.items():
        if not isinstance(item, dict):
            errors.append(ConfigError(position(node, name), "an integration must be a mapping"))
            continue
        kind = item.get("type", name)
        if kind not in INTEGRATION_TYPES:
            errors.append(ConfigError(position(item, "type"), f"unknown integration type {kind!r}"))
            continue
        known = {"type", "token", "token_file"} | ({"entra"} if kind == "azure" else set())
        refuse_unknown(item, known, errors)
        token = resolve_secret(item, "token", env_name(name, "token"), errors, base_dir)
        entra = _entra(item["entra"], errors) if "entra" in item else None
        found[name] = Integration(name, kind, token, entra)
    return found


def _entra(node: Any, errors: list[ConfigError]) -> EntraConfig | None:
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "entra must be a mapping"))
        return None
    refuse_unknown(node, {"jwks_url", "issuer", "audience", "role"}, errors)
    values: dict[str, tuple[str, ...]] = {}
    for key in ("jwks_url", "issuer", "audience"):
        value = node.get(key)
        items = value if isinstance(value, list) else [value]
        strings = tuple(v for v in items if isinstance(v, str) and v)
        if not strings or len(strings) != len(items):
            errors.append(ConfigError(position(node, key), f"{key} must be a string or list"))
            return None
        values[key] = strings
    if not values["jwks_url"][0].startswith("https://") and not values["jwks_url"][0].startswith(
        "http://127.0.0.1"
    ):
        errors.append(ConfigError(position(node, "jwks_url"), "jwks_url must be https"))
    role = node.get("role")
    return EntraConfig(values["jwks_url"][0], values["issuer"], values["audience"],
                       str(role) if role else None)


def _components(
    doc: dict[str, Any], errors: list[ConfigError], oncall: OnCall | None, policies: set[str]
) -> dict[str, Component]:
    node = _list(doc, "components", errors)
    found: dict[str, Component] = {}
    for index, item in enumerate(node):
        where = position(node, index)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            errors.append(ConfigError(where, "a component needs a name"))
            continue
        refuse_unknown(item, {"name", "team", "contacts", "runbook_url", "escalation_policy",
                              "vendors"}, errors)
        if item["name"] in found:
            errors.append(ConfigError(where, f"duplicate component {item['name']!r}"))
            continue
        team, policy = item.get("team"), item.get("escalation_policy")
        if oncall is not None and oncall.teams and team is not None and team not in oncall.teams:
            errors.append(ConfigError(position(item, "team"), f"unknown team {team!r}"))
        if policy is not None and policy not in policies:
            errors.append(ConfigError(position(item, "escalation_policy"),
                                      f"unknown escalation policy {policy!r}"))
        contacts = item.get("contacts", [])
        if not isinstance(contacts, list) or not all(isinstance(c, dict) for c in contacts):
            errors.append(ConfigError(position(item, "contacts"), "contacts must be a list of "
                                      "mappings (name, role, phone, email)"))
            contacts = []
        vendors = item.get("vendors", [])
        if not isinstance(vendors, list) or not all(
                isinstance(v, dict) and v.get("name") for v in vendors):
            errors.append(ConfigError(position(item, "vendors"), "vendors must be a list of "
                                      "mappings with a name (support_level, phone, case_url)"))
            vendors = []
        found[item["name"]] = Component(
            item["name"], str(item.get("team", "")),
            tuple({str(k): str(v) for k, v in c.items()} for c in contacts),
            str(item.get("runbook_url", "")), item.get("escalation_policy"),
            tuple({str(k): str(v) for k, v in vendor.items()} for vendor in vendors),
        )
    return found


def _receivers(
    doc: dict[str, Any], errors: list[ConfigError], base_dir: Path
) -> dict[str, ReceiverConfig]:
    node = _list(doc, "receivers", errors)
    found: dict[str, ReceiverConfig] = {}
    for index, item in enumerate(node):
        where = position(node, index)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            errors.append(ConfigError(where, "missing name in receiver"))
            continue
        refuse_unknown(item, {"name", "webhook_configs", "slack_configs", "teams_configs"},
                       errors)
        name = item["name"]
        if name in found:
            errors.append(ConfigError(where, f'notification config name "{name}" is not unique'))
            continue
        hooks = [
            _webhook(hook, name, errors, base_dir)
            for hook in _list(item, "webhook_configs", errors)
        ]
        chats = [
            _chat(chat, kind, name, errors, base_dir)
            for kind in ("slack", "teams")
            for chat in _list(item, f"{kind}_configs", errors)
        ]
        found[name] = ReceiverConfig(name, tuple(h for h in hooks if h is not None),
                                     tuple(c for c in chats if c is not None))
    return found


def _chat(node: Any, kind: str, receiver: str, errors: list[ConfigError],
          base_dir: Path) -> ChatConfig | None:
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), f"a {kind} config must be a mapping"))
        return None
    refuse_unknown(node, {"url", "url_file", "send_resolved"}, errors)
    # The URL of an incoming webhook is itself the credential: a secret setting.
    url = resolve_secret(node, "url", env_name(receiver, kind, "url"), errors, base_dir)
    if not url or not url.startswith(("http://", "https://")):
        errors.append(ConfigError(position(node, "url"), "url must be an http(s) URL"))
        return None
    return ChatConfig(kind, url, bool(node.get("send_resolved", True)))


def _webhook(
    node: Any, receiver: str, errors: list[ConfigError], base_dir: Path
) -> WebhookConfig | None:
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "a webhook config must be a mapping"))
        return None
    refuse_unknown(node, {"url", "url_file", "send_resolved", "secret", "secret_file",
                          "timeout", "max_alerts"}, errors)
    url = resolve_secret(node, "url", env_name(receiver, "webhook", "url"), errors, base_dir)
    if not url or not url.startswith(("http://", "https://")):
        errors.append(ConfigError(position(node, "url"), "url must be an http(s) URL"))
        return None
    secret = resolve_secret(node, "secret", env_name(receiver, "webhook", "secret"), errors,
                            base_dir)
    try:
        timeout = parse_duration(node.get("timeout", "10s"))
    except ValueError as exc:
        errors.append(ConfigError(position(node, "timeout"), str(exc)))
        timeout = 10.0
    send_resolved = node.get("send_resolved", True)
    max_alerts = node.get("max_alerts", 0)
    if not isinstance(send_resolved, bool):
        errors.append(ConfigError(position(node, "send_resolved"), "must be true or false"))
    if not isinstance(max_alerts, int) or max_alerts < 0:
        errors.append(ConfigError(position(node, "max_alerts"), "must be an integer >= 0"))
        max_alerts = 0
    return WebhookConfig(url, bool(send_resolved), secret, timeout or 10.0, max_alerts)
