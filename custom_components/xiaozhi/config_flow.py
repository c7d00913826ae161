"""Config flow: by hand (host, port, admin token), from mDNS, from the add-on; reauth, reconfigure, options.

The unique id of an entry is the hub's ``hub_id`` (stable across restarts and address changes), never
its address: a hub found again at a new address updates the existing entry instead of adding one.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .api import CannotConnect, HubInfo, InvalidAuth, XiaozhiApi
from .const import (
    CONF_ANNOUNCEMENTS,
    CONF_CONVERSATION_FIRST,
    CONF_HOME_CONTROL,
    CONF_HUB_ID,
    DEFAULT_OPTIONS,
    DEFAULT_PORT,
    DOMAIN,
)

_LOGGER = logging.getLogger(__name__)

PORT_FIELD = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))


def _user_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema({
        vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): str,
        vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): PORT_FIELD,
        vol.Required(CONF_TOKEN): str,
    })


TOKEN_SCHEMA = vol.Schema({vol.Required(CONF_TOKEN): str})


class XiaozhiConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a xiaozhi hub."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}

    async def _async_try(self, host: str, port: int, token: str) -> tuple[HubInfo | None, dict[str, str]]:
        """Test the connection and the token: (hub info, errors for the form)."""
        api = XiaozhiApi(async_get_clientsession(self.hass), host, port, token)
        try:
            return await api.get_hub(), {}
        except InvalidAuth:
            return None, {"base": "invalid_auth"}
        except CannotConnect as err:
            _LOGGER.debug("Cannot connect to %s: %s", api.base_url, err)
            return None, {"base": "cannot_connect"}
        except Exception:
            _LOGGER.exception("Unexpected error talking to %s", api.base_url)
            return None, {"base": "unknown"}

    def _create(self, info: HubInfo, host: str, port: int, token: str) -> ConfigFlowResult:
        return self.async_create_entry(
            title=info.name,
            data={CONF_HOST: host, CONF_PORT: port, CONF_TOKEN: token, CONF_HUB_ID: info.hub_id},
            options=dict(DEFAULT_OPTIONS))

    # -- by hand -------------------------------------------------------------------------------
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            host, port, token = user_input[CONF_HOST].strip(), user_input[CONF_PORT], user_input[CONF_TOKEN].strip()
            info, errors = await self._async_try(host, port, token)
            if info is not None:
                await self.async_set_unique_id(info.hub_id)
                self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port, CONF_TOKEN: token})
                return self._create(info, host, port, token)
        return self.async_show_form(step_id="user", data_schema=_user_schema(user_input or {}), errors=errors)

    # -- mDNS ----------------------------------------------------------------------------------
    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        props = discovery_info.properties
        hub_id = props.get(CONF_HUB_ID)
        if not hub_id:
            return self.async_abort(reason="no_hub_id")
        host = discovery_info.host
        port = _http_port(props)
        await self.async_set_unique_id(hub_id)
        self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port})
        name = discovery_info.name.removesuffix(f".{discovery_info.type}") or "xiaozhi-hub"
        self._discovered = {CONF_HOST: host, CONF_PORT: port, CONF_HUB_ID: hub_id, "name": name}
        self.context["title_placeholders"] = {"name": name}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """mDNS carries no secret: ask for the admin token (``xiaozhi-hub token`` prints it)."""
        errors: dict[str, str] = {}
        d = self._discovered
        if user_input is not None:
            token = user_input[CONF_TOKEN].strip()
            info, errors = await self._async_try(d[CONF_HOST], d[CONF_PORT], token)
            if info is not None:
                if info.hub_id != d[CONF_HUB_ID]:
                    return self.async_abort(reason="wrong_hub")
                return self._create(info, d[CONF_HOST], d[CONF_PORT], token)
        return self.async_show_form(
            step_id="zeroconf_confirm", data_schema=TOKEN_SCHEMA, errors=errors,
            description_placeholders={"name": d["name"], "host": d[CONF_HOST], "port": str(d[CONF_PORT])})

    # -- add-on (Supervisor discovery) ---------------------------------------------------------
    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        config = discovery_info.config
        try:
            host, port, hub_id = str(config[CONF_HOST]), PORT_FIELD(config[CONF_PORT]), str(config[CONF_HUB_ID])
        except (KeyError, vol.Invalid):
            return self.async_abort(reason="invalid_discovery_info")
        token = str(config.get(CONF_TOKEN) or "")   # absent when the hub had no admin token to announce
        await self.async_set_unique_id(hub_id)
        updates: dict[str, Any] = {CONF_HOST: host, CONF_PORT: port}
        if token:
            updates[CONF_TOKEN] = token
        self._abort_if_unique_id_configured(updates=updates)
        self._discovered = {CONF_HOST: host, CONF_PORT: port, CONF_TOKEN: token, CONF_HUB_ID: hub_id,
                            "name": discovery_info.name or "xiaozhi-hub"}
        self.context["title_placeholders"] = {"name": self._discovered["name"]}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Confirm the add-on's hub; ask for the token only if the add-on could not send one."""
        d = self._discovered
        errors: dict[str, str] = {}
        if user_input is not None:
            token = d[CONF_TOKEN] or user_input.get(CONF_TOKEN, "").strip()
            info, errors = await self._async_try(d[CONF_HOST], d[CONF_PORT], token)
            if info is not None:
                if info.hub_id != d[CONF_HUB_ID]:
                    return self.async_abort(reason="wrong_hub")
                return self._create(info, d[CONF_HOST], d[CONF_PORT], token)
        return self.async_show_form(step_id="hassio_confirm", errors=errors,
                                    data_schema=None if d[CONF_TOKEN] else TOKEN_SCHEMA,
                                    description_placeholders={"name": d["name"]})

    # -- the token changed ---------------------------------------------------------------------
    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            token = user_input[CONF_TOKEN].strip()
            info, errors = await self._async_try(entry.data[CONF_HOST], entry.data[CONF_PORT], token)
            if info is not None:
                await self.async_set_unique_id(info.hub_id)
                self._abort_if_unique_id_mismatch(reason="wrong_hub")
                return self.async_update_reload_and_abort(entry, data_updates={CONF_TOKEN: token})
        return self.async_show_form(step_id="reauth_confirm", data_schema=TOKEN_SCHEMA, errors=errors,
                                    description_placeholders={"name": entry.title})

    # -- the hub moved -------------------------------------------------------------------------
    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            host, port, token = user_input[CONF_HOST].strip(), user_input[CONF_PORT], user_input[CONF_TOKEN].strip()
            info, errors = await self._async_try(host, port, token)
            if info is not None:
                await self.async_set_unique_id(info.hub_id)
                self._abort_if_unique_id_mismatch(reason="wrong_hub")
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_HOST: host, CONF_PORT: port, CONF_TOKEN: token})
        defaults = user_input or {CONF_HOST: entry.data[CONF_HOST], CONF_PORT: entry.data[CONF_PORT]}
        return self.async_show_form(step_id="reconfigure", data_schema=_user_schema(defaults), errors=errors)

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: Any) -> XiaozhiOptionsFlow:
        return XiaozhiOptionsFlow()


class XiaozhiOptionsFlow(OptionsFlow):
    """Which features are on: announcements, home control, conversation-first."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        schema = vol.Schema({
            vol.Required(CONF_ANNOUNCEMENTS): bool,
            vol.Required(CONF_HOME_CONTROL): bool,
            vol.Required(CONF_CONVERSATION_FIRST): bool,
        })
        current = {**DEFAULT_OPTIONS, **self.config_entry.options}
        return self.async_show_form(step_id="init", data_schema=self.add_suggested_values_to_schema(schema, current))


def _http_port(props: Mapping[str, Any]) -> int:
    """The hub's HTTP port from its ``_xiaozhi._tcp`` TXT record (the service's own port is the
    devices' WebSocket port): ``http_port`` if given, else the port of ``ota_url``, else 8003."""
    raw = props.get("http_port")
    if isinstance(raw, str) and raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    ota = props.get("ota_url")
    if isinstance(ota, str):
        try:
            port = urlsplit(ota).port
        except ValueError:
            port = None
        if port:
            return port
    return DEFAULT_PORT
