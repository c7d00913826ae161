"""Config flow against a real hub process: user (good, bad token, unreachable), zeroconf (new hub, a
duplicate aborted with its address updated), add-on discovery, reauth, reconfigure, options."""

from __future__ import annotations

from ipaddress import ip_address

from homeassistant import config_entries
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.xiaozhi.const import (
    CONF_ANNOUNCEMENTS,
    CONF_CONVERSATION_FIRST,
    CONF_HOME_CONTROL,
    CONF_HUB_ID,
    DEFAULT_OPTIONS,
    DOMAIN,
)

from .conftest import hub_info
from .hubproc import HubProcess, free_port


def _zeroconf(hub: HubProcess, hub_id: str | None, host: str = "127.0.0.1") -> ZeroconfServiceInfo:
    props = {"ws_path": "/xiaozhi/v1/", "ota_url": f"http://{host}:{hub.http_port}/xiaozhi/ota/", "version": "0.1.0"}
    if hub_id is not None:
        props["hub_id"] = hub_id
    return ZeroconfServiceInfo(
        ip_address=ip_address(host), ip_addresses=[ip_address(host)], hostname="xiaozhi-hub-test.local.",
        name="xiaozhi-hub-test._xiaozhi._tcp.local.", port=hub.ws_port, type="_xiaozhi._tcp.local.",
        properties=props)


async def _user_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return result["flow_id"]


async def _unload_all(hass: HomeAssistant) -> None:
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_user_flow_creates_an_entry_keyed_by_hub_id(hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    flow_id = await _user_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: hub_process.token})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == info.hub_id
    assert entry.data == {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port,
                          CONF_TOKEN: hub_process.token, CONF_HUB_ID: info.hub_id}
    assert entry.options == DEFAULT_OPTIONS
    assert entry.state is config_entries.ConfigEntryState.LOADED
    await _unload_all(hass)


async def test_user_flow_bad_token_then_good_token(hass: HomeAssistant, hub_process: HubProcess) -> None:
    flow_id = await _user_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: "not-the-token"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: hub_process.token})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await _unload_all(hass)


async def test_user_flow_unreachable_hub(hass: HomeAssistant, socket_enabled: None) -> None:
    flow_id = await _user_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: free_port(), CONF_TOKEN: "whatever"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_user_flow_same_hub_twice_is_aborted(hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    MockConfigEntry(domain=DOMAIN, unique_id=info.hub_id,
                    data={CONF_HOST: "10.0.0.9", CONF_PORT: 8003, CONF_TOKEN: "old", CONF_HUB_ID: info.hub_id}
                    ).add_to_hass(hass)
    flow_id = await _user_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: hub_process.token})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await _unload_all(hass)


async def test_zeroconf_flow_asks_for_the_token(hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(hub_process, info.hub_id))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: "wrong"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: hub_process.token})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The HTTP port comes from the TXT record's ota_url, not the advertised (WebSocket) port.
    assert result["result"].data[CONF_PORT] == hub_process.http_port
    assert result["result"].unique_id == info.hub_id
    await _unload_all(hass)


async def test_zeroconf_duplicate_is_aborted_and_updates_the_address(
        hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    entry = MockConfigEntry(domain=DOMAIN, unique_id=info.hub_id,
                            data={CONF_HOST: "192.0.2.7", CONF_PORT: 9999, CONF_TOKEN: hub_process.token,
                                  CONF_HUB_ID: info.hub_id})
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(hub_process, info.hub_id))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == "127.0.0.1"
    assert entry.data[CONF_PORT] == hub_process.http_port
    assert entry.data[CONF_TOKEN] == hub_process.token
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    await _unload_all(hass)


async def test_zeroconf_without_hub_id_is_aborted(hass: HomeAssistant, hub_process: HubProcess) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(hub_process, None))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_hub_id"


async def test_hassio_discovery_creates_an_entry_and_a_repeat_updates_it(
        hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    config = {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: hub_process.token,
              CONF_HUB_ID: info.hub_id}
    discovery = HassioServiceInfo(config=config, name="Xiaozhi hub", slug="xiaozhi", uuid="1234")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=discovery)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == info.hub_id
    await _unload_all(hass)

    moved = HassioServiceInfo(config={**config, CONF_HOST: "127.0.0.1", CONF_TOKEN: "rotated"},
                              name="Xiaozhi hub", slug="xiaozhi", uuid="1234")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=moved)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_TOKEN] == "rotated"
    await _unload_all(hass)


async def test_hassio_discovery_without_a_token_asks_for_it(hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    discovery = HassioServiceInfo(config={CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port,
                                          CONF_HUB_ID: info.hub_id}, name="Xiaozhi hub", slug="xiaozhi", uuid="1")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=discovery)
    assert result["step_id"] == "hassio_confirm"
    assert CONF_TOKEN in result["data_schema"].schema
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: "wrong"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: hub_process.token})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].data[CONF_TOKEN] == hub_process.token
    await _unload_all(hass)


async def test_hassio_discovery_without_hub_id_is_aborted(hass: HomeAssistant) -> None:
    discovery = HassioServiceInfo(config={CONF_HOST: "x", CONF_PORT: 8003}, name="x", slug="x", uuid="1")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=discovery)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_reconfigure_updates_the_entry(hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    entry = MockConfigEntry(domain=DOMAIN, unique_id=info.hub_id,
                            data={CONF_HOST: "192.0.2.7", CONF_PORT: 9999, CONF_TOKEN: "old",
                                  CONF_HUB_ID: info.hub_id})
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: hub_process.token})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_HOST] == "127.0.0.1" and entry.data[CONF_PORT] == hub_process.http_port
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    await _unload_all(hass)


async def test_reconfigure_to_a_different_hub_is_refused(hass: HomeAssistant, hub_process: HubProcess) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="some-other-hub",
                            data={CONF_HOST: "192.0.2.7", CONF_PORT: 9999, CONF_TOKEN: "old",
                                  CONF_HUB_ID: "some-other-hub"})
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: hub_process.token})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_hub"
    assert entry.data[CONF_HOST] == "192.0.2.7"


async def test_bad_stored_token_starts_reauth_and_reauth_fixes_it(
        hass: HomeAssistant, hub_process: HubProcess) -> None:
    info = await hub_info(hass, hub_process)
    entry = MockConfigEntry(domain=DOMAIN, unique_id=info.hub_id,
                            data={CONF_HOST: "127.0.0.1", CONF_PORT: hub_process.http_port, CONF_TOKEN: "stale",
                                  CONF_HUB_ID: info.hub_id})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is config_entries.ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [config_entries.SOURCE_REAUTH]
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_TOKEN: "still-wrong"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_TOKEN: hub_process.token})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == hub_process.token
    assert entry.state is config_entries.ConfigEntryState.LOADED
    await _unload_all(hass)


async def test_unreachable_hub_at_setup_is_retried(hass: HomeAssistant, socket_enabled: None) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="x",
                            data={CONF_HOST: "127.0.0.1", CONF_PORT: free_port(), CONF_TOKEN: "t", CONF_HUB_ID: "x"})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is config_entries.ConfigEntryState.SETUP_RETRY
    await hass.config_entries.async_unload(entry.entry_id)


async def test_options_flow_switches_features(hass, setup_entry) -> None:
    entry = await setup_entry()
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_ANNOUNCEMENTS: False, CONF_HOME_CONTROL: False, CONF_CONVERSATION_FIRST: True})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_ANNOUNCEMENTS: False, CONF_HOME_CONTROL: False, CONF_CONVERSATION_FIRST: True}
    # The entry was reloaded with the new features.
    assert entry.state is config_entries.ConfigEntryState.LOADED
    assert entry.runtime_data.platforms and "notify" not in entry.runtime_data.platforms
