"""paho-mqtt on the hub's event loop without ever blocking it (docs/mqtt.md, How it runs).

paho's network loop runs in its own thread (``loop_start``): one thread for the whole bridge, never
one per device. That thread does everything that can block — DNS, the TCP connect to a broker that
may be down or unreachable, the TLS handshake, keepalives — and paho's own reconnect with
exponential backoff (``reconnect_delay_set``). Its callbacks do nothing but hand the event to the
loop with ``call_soon_threadsafe``. From the loop, :meth:`MqttClient.publish` only appends to paho's
outgoing queue (and wakes its thread), so publishing never waits for the network; while the broker
is away nothing is queued at all (the bridge republishes its retained state on reconnect).

The alternative, paho's socket callbacks driven by asyncio's reader/writer, would put the blocking
``connect`` (and the TLS handshake) on the loop or in an executor anyway, and re-implement paho's
reconnect; a thread is simpler and just as cheap here.

The broker's password is given to paho and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as paho

from ..settings import MqttSettings

log = logging.getLogger(__name__)

KEEPALIVE = 30            # seconds; the broker publishes the will this long (x 1.5) after a silent loss
RECONNECT_MIN = 1.0       # backoff between attempts: doubles from this ...
RECONNECT_MAX = 60.0      # ... up to this
CONNECT_TIMEOUT = 5.0     # one TCP connect attempt (in paho's thread)
MAX_QUEUED = 5000         # QoS 1 messages paho may hold (in flight or queued) before refusing more
STOP_WAIT = 6.0           # how long stop() waits for the last message and for paho's thread


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    retain: bool


class MqttClient:
    """One connection to the broker, with a will, for the bridge (:mod:`.bridge`)."""

    def __init__(self, settings: MqttSettings, client_id: str, will: tuple[str, str],
                 subscriptions: list[str], on_connected: Callable[[], None],
                 on_message: Callable[[Inbound], None], on_state: Callable[[bool], None] | None = None) -> None:
        self.settings = settings
        self.client_id = client_id
        self.will = will
        self.subscriptions = subscriptions
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_state = on_state              # told True/False as the connection comes and goes
        self.connected = False
        self.connects = 0                      # successful connections so far (tests, status)
        self.published = 0
        self.not_sent = 0                      # publishes skipped (broker away) or refused (queue full)
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paho: paho.Client | None = None
        self._failing = False                  # a failure was logged; stay quiet until connected again

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- lifecycle (on the loop) ------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in paho's thread; returns at once (the broker may well be down)."""
        self._loop = asyncio.get_running_loop()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv311, clean_session=True)
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password or None)
        if self.settings.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)      # the system's CA certificates
        client.will_set(self.will[0], self.will[1], qos=1, retain=True)
        client.reconnect_delay_set(int(max(1, RECONNECT_MIN)), int(max(RECONNECT_MIN, RECONNECT_MAX)))
        client.connect_timeout = CONNECT_TIMEOUT
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_connect_fail = self._paho_connect_fail
        client.on_message = self._paho_message
        self._paho = client
        client.connect_async(self.settings.host, self.settings.port, keepalive=KEEPALIVE)
        client.loop_start()

    async def stop(self, last: list[tuple[str, str]]) -> None:
        """Publish ``last`` (retained: the hub going offline), disconnect cleanly (so the broker does
        not send the will), and end paho's thread; bounded by :data:`STOP_WAIT` in all."""
        client, self._paho = self._paho, None
        if client is None:
            return
        infos = [client.publish(t, p, qos=1, retain=True) for t, p in last] if self.connected else []
        loop = asyncio.get_running_loop()

        def finish() -> None:
            for info in infos:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(STOP_WAIT / 2)
            client.disconnect()
            client.loop_stop()

        await asyncio.wait({loop.run_in_executor(None, finish)}, timeout=STOP_WAIT)
        self.connected = False

    # -- publishing (on the loop; never waits for the network) ---------------------------------------------
    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> bool:
        """Queue one message; False when it was not (no connection now, or paho's queue is full)."""
        client = self._paho
        if client is None or not self.connected:
            self.not_sent += 1
            return False
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self.not_sent += 1
            return False
        self.published += 1
        return True

    async def wait_connected(self, connected: bool = True, timeout: float = 30.0) -> None:
        """Wait until the connection is (or is no longer) up (tests and the bench)."""
        async with asyncio.timeout(timeout):
            while self.connected != connected:
                self._changed.clear()
                await self._changed.wait()

    # -- paho's thread → the loop ---------------------------------------------------------------------------
    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):      # the loop is closed: the hub is gone
            loop.call_soon_threadsafe(fn, *args)

    def _paho_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._to_loop(self._refused, str(reason))
            return
        # Subscribed here, in paho's thread, so every reconnection subscribes again.
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        self._to_loop(self._up)

    def _paho_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._to_loop(self._down, str(reason))

    def _paho_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._to_loop(self._unreachable)

    def _paho_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._to_loop(self._on_message, Inbound(message.topic, bytes(message.payload), bool(message.retain)))

    # -- on the loop --------------------------------------------------------------------------------------
    def _set(self, connected: bool) -> None:
        self.connected = connected
        self._changed.set()
        if self._on_state is not None:
            self._on_state(connected)

    def _up(self) -> None:
        if self._paho is None:
            return
        self.connects += 1
        self._failing = False
        self._set(True)
        log.info("MQTT: connected to %s", self.where)
        self._on_connected()

    def _down(self, reason: str) -> None:
        was = self.connected
        self._set(False)
        if was and self._paho is not None:
            log.warning("MQTT: lost the broker %s (%s); reconnecting with backoff", self.where, reason)

    def _refused(self, reason: str) -> None:
        self._set(False)
        if not self._failing:
            self._failing = True
            log.warning("MQTT: the broker %s refused the connection: %s (check mqtt.username/password); "
                        "retrying with backoff", self.where, reason)

    def _unreachable(self) -> None:
        if not self._failing:
            self._failing = True
            log.warning("MQTT: cannot reach the broker %s; retrying with backoff (up to %g s apart)",
                        self.where, RECONNECT_MAX)
