"""The MQTT bridge: one more front door to the hub's shared services (docs/mqtt.md).

- **Out**: it follows the event bus (``ctx.events``). State-like topics (availability, state,
  volume, last heard/reply; retained) are always published from the device's *current* live state
  (``ctx.live``), so a late event can never leave an old value retained; the device's events go to
  ``<base>/<id>/event`` as they happened.
- **In**: commands (:mod:`.commands`), handled one at a time in arrival order on the loop; volume and
  stop, which wait for the device, run as their own tasks so they hold up nothing else.
- **Republish**: everything retained is published again whenever the connection comes back (a
  restarted broker may have lost it) and, with discovery, when Home Assistant says ``online``.
- **Discovery** only while ``mqtt.discovery`` is true and no Home Assistant component has asked the
  hub to stop (``ctx.component.mqtt_discovery``); otherwise the bridge clears the retained discovery
  of every known device (an empty retained payload), so Home Assistant does not show them twice.

Nothing here can slow a conversation: sessions only publish on the bus (never waits), the bridge's
subscription is bounded (if it ever fell that far behind, it resubscribes and republishes), and
publishing only queues for paho's thread (:mod:`.client`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from ..services.events import Event, EventType, SubscriberDropped
from ..store.devices import Device
from .client import Inbound, MqttClient
from .commands import CommandError, Commands
from .discovery import device_config, device_object_id, hub_config, hub_object_id
from .topics import OFFLINE, ONLINE, Topics, topic_id

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

EVENT_TOPIC_TYPES = frozenset({EventType.WAKE, EventType.STT, EventType.REPLY, EventType.TURN_FINISHED,
                               EventType.TOOL_CALL, EventType.ANNOUNCEMENT, EventType.ERROR})
SUBSCRIPTION_SIZE = 4096        # events the bridge may fall behind before the bus drops it
INBOX_SIZE = 1000               # commands waiting to be handled; more are refused on <base>/error
MAX_PENDING = 64                # volume/stop commands waiting for their devices at once
# After a start, discovery waits this long (the broker still retains the last run's), so that a Home
# Assistant component that reconnects and asks for none does not see every device created and removed.
DISCOVERY_GRACE = 20.0
HA_ONLINE_DELAY = (0.2, 1.5)    # random delay before republishing discovery on Home Assistant's birth
RETAINED_LEAVES = ("availability", "state", "volume", "last_heard", "last_reply")
# The retained topics an event changes.
STATE_LEAVES: dict[EventType, tuple[str, ...]] = {
    EventType.DEVICE_CONNECTED: ("availability", "state"), EventType.DEVICE_DISCONNECTED: ("availability", "state"),
    EventType.STATE: ("state",), EventType.VOLUME: ("volume",), EventType.STT: ("last_heard",),
    EventType.REPLY: ("last_reply",)}
REPUBLISH_BATCH = 25             # devices republished between two turns of the event loop
LOG_EVERY = 60.0
MAX_TOPIC_ECHO = 200            # characters of a refused command's topic echoed on <base>/error and in the log                # bad commands are logged at most ~10 times a minute


class MqttBridge:
    def __init__(self, ctx: "HubContext") -> None:
        self.ctx = ctx
        s = ctx.settings.mqtt
        self.settings = s
        self.topics = Topics(s.base_topic, s.discovery_prefix)
        self.known: dict[str, str] = {}                     # topic id → device id
        self.commands = Commands(ctx, self.known)
        self.client = MqttClient(s, f"xiaozhi-hub-{ctx.hub_id}", (self.topics.hub_availability, OFFLINE),
                                 self.topics.subscriptions(), self._connected, self._received, self._link_state)
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue(INBOX_SIZE)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting: set[asyncio.Task[Any]] = set()       # volume/stop commands waiting for their devices
        self._main: list[asyncio.Task[None]] = []
        self.errors = 0                                     # commands answered on <base>/error
        self.in_grace = False                               # see DISCOVERY_GRACE
        self._log_window = (0.0, 0)

    @property
    def discovery_allowed(self) -> bool:
        return self.settings.discovery and self.ctx.component.mqtt_discovery

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        for device in await self.ctx.devices.list_all():
            self.known[topic_id(device.device_id)] = device.device_id
        self._main = [asyncio.create_task(self._follow_events(), name="mqtt-events"),
                      asyncio.create_task(self._handle_commands(), name="mqtt-commands")]
        if DISCOVERY_GRACE > 0 and self.settings.discovery:
            self.in_grace = True
            self._main.append(asyncio.create_task(self._end_grace(DISCOVERY_GRACE), name="mqtt-grace"))
        self.ctx.component.discovery_listeners.append(self._discovery_flag)
        self._link_state(False)
        self.client.start()
        log.info("MQTT bridge: broker %s, topics %s/…, discovery %s", self.client.where, self.topics.base,
                 "on" if self.settings.discovery else "off (mqtt.discovery: false)")

    async def close(self) -> None:
        if self._discovery_flag in self.ctx.component.discovery_listeners:
            self.ctx.component.discovery_listeners.remove(self._discovery_flag)
        tasks = [*self._main, *self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self.client.stop([(self.topics.hub_availability, OFFLINE)])

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT bridge task %s failed", task.get_name(), exc_info=task.exception())

    # -- publishing ----------------------------------------------------------------------------------------
    def _json(self, topic: str, payload: Any, retain: bool = False) -> None:
        self.client.publish(topic, json.dumps(payload, ensure_ascii=False, separators=(",", ":")), retain)

    def publish_device_state(self, device_id: str, leaves: tuple[str, ...] = RETAINED_LEAVES) -> None:
        """The device's retained topics (``leaves`` of them) from its live state now; what is not known
        (no volume reported yet, nothing heard since the hub started) is left as the broker has it."""
        tid = topic_id(device_id)
        live = self.ctx.live.get(device_id)
        values = {"availability": ONLINE if live and live.online else OFFLINE, "state": live.state if live else OFFLINE,
                  "volume": str(live.volume) if live and live.volume is not None else None,
                  "last_heard": live.last_heard if live else None, "last_reply": live.last_reply if live else None}
        for leaf in leaves:
            value = values[leaf]
            if value is not None:
                self.client.publish(self.topics.device(tid, leaf), value, True)

    def publish_connected_count(self) -> None:
        self.client.publish(self.topics.hub_connected, str(len(self.ctx.live.online_ids())), True)

    def publish_discovery(self, device: Device) -> None:
        """Its discovery payload, or an empty retained one that removes it while discovery is not allowed
        (during the start's grace: nothing)."""
        tid = topic_id(device.device_id)
        if self.discovery_allowed and self.in_grace:
            return
        if self.discovery_allowed:
            config = device_config(self.topics, device, tid, self.ctx.hub_id, self.ctx.http_url())
            self._json(self.topics.discovery(device_object_id(tid)), config, retain=True)
        else:
            self.client.publish(self.topics.discovery(device_object_id(tid)), b"", True)

    def publish_hub_discovery(self) -> None:
        topic = self.topics.discovery(hub_object_id(self.ctx.hub_id))
        if self.discovery_allowed and self.in_grace:
            return
        if self.discovery_allowed:
            name = self.ctx.settings.mdns.name or "xiaozhi-hub"
            self._json(topic, hub_config(self.topics, self.ctx.hub_id, name, self.ctx.http_url()), retain=True)
        else:
            self.client.publish(topic, b"", True)

    async def republish(self, discovery: bool = True, states: bool = True) -> None:
        """Everything retained again: the hub's availability, discovery (or its clearing), then states."""
        devices = await self.ctx.devices.list_all()
        if not self.client.connected:
            return
        self.client.publish(self.topics.hub_availability, ONLINE, True)
        if discovery:
            self.publish_hub_discovery()
        for n, device in enumerate(devices, 1):
            self.known[topic_id(device.device_id)] = device.device_id
            if discovery:
                self.publish_discovery(device)
            if states:
                self.publish_device_state(device.device_id)
            if n % REPUBLISH_BATCH == 0:
                await asyncio.sleep(0)          # many devices: let the audio of the others go on meanwhile
        if states:
            self.publish_connected_count()

    def _connected(self) -> None:
        self.ctx.metrics.inc("mqtt_connects")
        self._spawn(self.republish(), "mqtt-republish")

    def _link_state(self, connected: bool) -> None:
        self.ctx.metrics.gauges["mqtt_connected"] = 1.0 if connected else 0.0

    def _discovery_flag(self, allowed: bool) -> None:
        """The Home Assistant component registered or left: publish or clear discovery."""
        self._spawn(self.republish(states=False), "mqtt-discovery")

    async def _end_grace(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.in_grace = False
        if self.discovery_allowed:
            await self.republish(states=False)

    async def _ha_online(self) -> None:
        await asyncio.sleep(random.uniform(*HA_ONLINE_DELAY))     # not every integration at the same instant
        await self.republish(discovery=self.discovery_allowed)

    # -- events → topics -------------------------------------------------------------------------------------
    async def _follow_events(self) -> None:
        while True:
            sub = self.ctx.events.subscribe(SUBSCRIPTION_SIZE, "mqtt")
            try:
                async for event in sub:
                    self.on_event(event)
            except SubscriberDropped:
                log.warning("MQTT bridge fell behind the event bus; republishing its state")
                self._spawn(self.republish(), "mqtt-republish")
            finally:
                sub.close()

    def on_event(self, event: Event) -> None:
        device_id = event.device_id
        if event.type in EVENT_TOPIC_TYPES:
            topic = self.topics.hub_event if device_id is None else self.topics.device(topic_id(device_id), "event")
            self._json(topic, event.to_json())
        if device_id is None:
            return
        leaves = STATE_LEAVES.get(event.type)
        if leaves is not None:
            self.publish_device_state(device_id, leaves)
            if event.type in (EventType.DEVICE_CONNECTED, EventType.DEVICE_DISCONNECTED):
                self.publish_connected_count()
        elif event.type in (EventType.DEVICE_ADDED, EventType.DEVICE_RENAMED):
            self._spawn(self._device_changed(device_id), "mqtt-device")
        elif event.type is EventType.DEVICE_REMOVED:
            self._device_removed(device_id)

    async def _device_changed(self, device_id: str) -> None:
        device = await self.ctx.devices.get(device_id)
        if device is None:
            return
        self.known[topic_id(device_id)] = device_id
        self.publish_discovery(device)
        self.publish_device_state(device_id)

    def _device_removed(self, device_id: str) -> None:
        """Gone from the hub: its discovery and retained topics are cleared (empty retained payloads)."""
        tid = topic_id(device_id)
        self.known.pop(tid, None)
        self.client.publish(self.topics.discovery(device_object_id(tid)), b"", True)
        for leaf in RETAINED_LEAVES:
            self.client.publish(self.topics.device(tid, leaf), b"", True)

    # -- topics → commands -------------------------------------------------------------------------------------
    def _received(self, msg: Inbound) -> None:
        """From paho's thread, on the loop: queue it (bounded), never act inline."""
        try:
            self._inbox.put_nowait(msg)
        except asyncio.QueueFull:
            self.report(msg.topic, f"too many commands waiting (more than {INBOX_SIZE}); this one was dropped")

    async def _handle_commands(self) -> None:
        while True:
            msg = await self._inbox.get()
            try:
                await self.handle(msg)
            except Exception:           # a bug, not bad input: logged, and the next command is handled
                log.exception("MQTT: handling a message on %s failed", msg.topic)

    async def handle(self, msg: Inbound) -> None:
        if msg.topic == self.topics.ha_status:
            if msg.payload.strip() == ONLINE.encode():
                self._spawn(self._ha_online(), "mqtt-ha-online")
            return
        command = self.topics.command(msg.topic)
        if command is None:
            return
        if not msg.payload:
            return                  # an empty message: how MQTT clears a retained one, not a command
        if msg.retain:
            self.report(msg.topic, "retained commands are ignored (publish commands without the retain flag, "
                                   "and clear this one with an empty retained message)")
            return
        self.ctx.metrics.inc("mqtt_commands")
        if command.command == "say":
            await self._run(command, msg)        # in arrival order: two says are queued in the order sent
        elif len(self._waiting) >= MAX_PENDING:
            self.report(msg.topic, f"too many commands waiting for their devices (more than {MAX_PENDING})")
        else:
            task = self._spawn(self._run(command, msg), "mqtt-command")
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)

    async def _run(self, command: Any, msg: Inbound) -> None:
        try:
            await self.commands.run(command, msg.payload)
        except CommandError as err:
            self.report(msg.topic, str(err))

    def report(self, topic: str, reason: str) -> None:
        """Answer a command the bridge cannot use on ``<base>/error``, and log it (without the payload)."""
        self.errors += 1
        self.ctx.metrics.inc("mqtt_command_errors")
        topic = topic[:MAX_TOPIC_ECHO]
        self._json(self.topics.error, {"topic": topic, "error": reason, "ts": round(time.time(), 3)})
        start, count = self._log_window
        now = time.monotonic()
        if now - start > LOG_EVERY:
            start, count = now, 0
        if count < 10:
            log.warning("MQTT: refused a message on %r: %s", topic, reason)
        self._log_window = (start, count + 1)
