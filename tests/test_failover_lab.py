"""The trunk failover lab, end to end, with real calls.

A real Kamailio dispatcher (set 1, priority order: trunk-ct at 10 is the
primary, trunk-cu at 5 the backup; its own probing off) in front of two SIPp
trunks that answer both OPTIONS (Dialwatch's ``sip`` probe, every second) and
INVITE (100, 180, 200, ACK, BYE). A SIPp caller sends batches of calls to
Kamailio, which routes each INVITE with ``ds_select_dst`` and record-routes the
dialog; every assertion on where calls went reads the INVITEs each trunk's SIPp
received (its ``-trace_msg`` file), by the batch's Call-IDs.

``dialwatch run`` runs as a process with the failover group over Kamailio's
ctl socket. Each scenario is one test: a dead primary and its failback, a
failback that waits for an operator's approval through the API, every trunk
down, a trunk down only because its parent is, and a Kamailio restart that
forgets the state Dialwatch set.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runbooks.kamailio import CtlDispatcher
from tests.failover_lab import Appliance, wait_for
from tests.peers import free_port
from tests.peers.kamailio import Kamailio, kamailio_dispatcher
from tests.peers.sipp import (
    DroppingUdpRelay,
    SippUas,
    requests_received,
    sipp_calls,
    sipp_trunk_uas,
)

PROBE = "interval: 1s, timeout: 300ms, fail_after: 2, recover_after: 1"
CALLS = 4
TICK = 5.0
"""runbooks.failover.service.TICK: failback and verify happen on rounds this far apart."""


@dataclass
class Lab:
    """The lab's peers: two SIPp trunks and the Kamailio dispatcher in front of them."""

    workdir: Path
    primary: SippUas
    backup: SippUas
    proxy: Kamailio
    _primary_stack: contextlib.ExitStack = field(repr=False)

    @property
    def dispatcher(self) -> CtlDispatcher:
        return CtlDispatcher(str(self.proxy.ctl))

    def flags(self) -> list[str]:
        """Kamailio's own view, in list order (primary, backup): ``AX`` active, ``IX`` not."""
        return [d.flags for d in self.dispatcher.list()]

    def kill_primary(self) -> None:
        """The carrier's trunk dies (SIGKILL: no goodbye)."""
        self.primary.process.kill()
        self.primary.process.wait(5)
        self._primary_stack.close()

    def revive_primary(self) -> None:
        """The primary comes back where it was (same port, a fresh message trace)."""
        self.primary = self._primary_stack.enter_context(
            sipp_trunk_uas(self.workdir, port=self.primary.port)
        )

    def calls(self, label: str, reach: SippUas) -> list[str]:
        """Send a batch of calls through Kamailio; each must complete (INVITE, 200, ACK,
        BYE) and every INVITE, ACK and BYE must have reached ``reach`` and none the other
        trunk. Returns the batch's Call-IDs."""
        batch = sipp_calls(self.workdir, f"127.0.0.1:{self.proxy.port}", CALLS, label)
        assert batch.returncode == 0, f"calls {label} failed:\n{batch.output}"
        other = self.backup if reach is self.primary else self.primary
        for method in ("INVITE", "ACK", "BYE"):
            got = requests_received(reach, method)
            assert set(batch.call_ids) <= set(got), (method, batch.call_ids, got)
        assert not set(batch.call_ids) & set(requests_received(other, "INVITE"))
        return batch.call_ids


@contextlib.contextmanager
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Two trunks and Kamailio in front of them; the primary on a stack of its own, so a
    test can kill it and bring it back."""
    with contextlib.ExitStack() as primary_stack:
        primary = primary_stack.enter_context(sipp_trunk_uas(tmp_path))
        with (
            sipp_trunk_uas(tmp_path) as backup,
            kamailio_dispatcher(tmp_path, [(primary.uri, 10), (backup.uri, 5)]) as proxy,
        ):
            the_lab = Lab(tmp_path, primary, backup, proxy, primary_stack)
            assert the_lab.flags() == ["AX", "AX"]
            yield the_lab


def config(
    lab: Lab,
    *,
    failback: str = "auto",
    verify_every: str = "2m",
    primary_probe: str | None = None,
    uplink_port: int | None = None,
) -> str:
    """The appliance's config: both trunks probed every second, one failover group.
    ``primary_probe``: the URI Dialwatch probes trunk-ct at (default: its destination);
    ``uplink_port``: trunk-ct ``depends_on`` a tcp target ``uplink`` on that port."""
    parent = ""
    depends = ""
    if uplink_port is not None:
        parent = f'  - {{id: uplink, kind: tcp, address: "127.0.0.1:{uplink_port}", {PROBE}}}\n'
        depends = ", depends_on: [uplink]"
    return f"""\
appliance: {{interval: 24h}}
targets:
{parent}  - {{id: trunk-ct, kind: sip, uri: "{primary_probe or lab.primary.uri}", {PROBE}{depends}}}
  - {{id: trunk-cu, kind: sip, uri: "{lab.backup.uri}", {PROBE}}}
failover:
  - id: carriers
    proxy: {{kind: kamailio, ctl: "unix:{lab.proxy.ctl}", set: 1}}
    members:
      - {{target: trunk-ct, destination: "{lab.primary.uri}"}}
      - {{target: trunk-cu, destination: "{lab.backup.uri}"}}
    failback_after: 3s
    failback: {failback}
    verify_every: {verify_every}
"""


def members(app: Appliance) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/failover``: the group's members by target."""
    [group] = app.get("/api/v1/failover")["items"]
    return {m["target"]: m for m in group["members"]}


def audited(app: Appliance, action: str, target: str = "trunk-ct") -> list[dict[str, Any]]:
    return [e for e in app.audit(action) if e["object"] == f"failover:carriers/{target}"]


@pytest.mark.e2e
def test_calls_leave_a_dead_primary_trunk_and_come_back_when_it_is_stable(
    tmp_path: Path,
) -> None:
    with lab(tmp_path) as lb, Appliance(tmp_path, config(lb)) as app:
        lb.calls("before", reach=lb.primary)  # priority order: the primary

        lb.kill_primary()
        wait_for("the primary to be taken out", lambda: lb.flags() == ["IX", "AX"], 15)
        # The proxy is changed first, then what Dialwatch wants is stored: a moment apart.
        wait_for("the wanted state stored",
                 lambda: members(app)["trunk-ct"]["wanted"] == "inactive", 5)  # fmt: skip
        lb.calls("failed-over", reach=lb.backup)

        lb.revive_primary()
        back = time.monotonic()
        wait_for("the failback", lambda: lb.flags() == ["AX", "AX"], 30)
        # Not before it has been up for failback_after (3 s), after recover_after (1 probe).
        assert time.monotonic() - back >= 3.0
        lb.calls("failed-back", reach=lb.primary)

        [disable] = audited(app, "failover.disable")
        [enable] = audited(app, "failover.enable")
        assert disable["result"] == enable["result"] == "ok"
        assert "its own health is down" in disable["detail"]
        assert members(app)["trunk-ct"]["wanted"] == "active"
        app.stop()


@pytest.mark.e2e
def test_with_failback_approve_a_stable_primary_waits_for_an_operator_through_the_api(
    tmp_path: Path,
) -> None:
    with lab(tmp_path) as lb, Appliance(tmp_path, config(lb, failback="approve")) as app:
        approve = "/api/v1/failover/carriers/trunk-ct/approve"
        status, body = app.api("POST", approve)
        assert status == 409 and "in the proxy already" in body["error"]

        lb.kill_primary()
        wait_for("the primary to be taken out", lambda: lb.flags() == ["IX", "AX"], 15)
        lb.revive_primary()
        waiting = "trunk-ct is up and stable: it waits for a person to approve"
        wait_for("the failback to wait for an approval", lambda: waiting in app.text(), 30)

        # Up and stable, and still out: calls keep going to the backup.
        member = members(app)["trunk-ct"]
        assert (member["health"], member["wanted"], member["approved_by"]) == (
            "up",
            "inactive",
            None,
        )
        assert lb.flags() == ["IX", "AX"]
        lb.calls("waiting", reach=lb.backup)

        status, body = app.api("POST", approve)
        assert status == 200, body
        assert (body["approved_by"], body["wanted"]) == (
            "token:1",
            "inactive",
        )  # a token acts as itself
        wait_for("the approved failback", lambda: lb.flags() == ["AX", "AX"], TICK + 5)
        lb.calls("approved", reach=lb.primary)

        member = members(app)["trunk-ct"]
        assert (member["wanted"], member["approved_by"]) == ("active", None)
        # Newest first: the approval, and the refusal while the primary was still in.
        approvals = audited(app, "failover.approve")
        assert [(a["actor"], a["result"]) for a in approvals] == [
            ("token:1", "ok"),
            ("token:1", "failed"),
        ]
        assert len(audited(app, "failover.enable")) == 1
        app.stop()


@pytest.mark.e2e
def test_when_every_trunk_dies_none_stays_taken_out(tmp_path: Path) -> None:
    """Both trunks die at once. Dialwatch's probe slots are spread (by target id), so it
    sees one trunk down about half a second before the other: the first may be taken
    out (the other was up then); once every member is down it is put back, so the
    proxy ends with both active, as if none had been taken out."""
    with lab(tmp_path) as lb, Appliance(tmp_path, config(lb)) as app:
        lb.calls("before", reach=lb.primary)
        lb.backup.process.kill()
        lb.kill_primary()

        def both_down() -> bool:
            return {m["health"] for m in members(app).values()} == {"down"}

        wait_for("both trunks to be down", both_down, 15)
        note = "every member is down: none is taken out of the proxy"
        wait_for("the decision with every member down", lambda: note in app.text(), 10)
        wait_for("both active in the proxy", lambda: lb.flags() == ["AX", "AX"], 10)
        assert {m["wanted"] for m in members(app).values()} == {"active"}
        for target in ("trunk-ct", "trunk-cu"):  # whichever was taken out came back
            assert len(audited(app, "failover.disable", target=target)) == len(
                audited(app, "failover.enable", target=target)
            )
        app.stop()


@pytest.mark.e2e
def test_a_trunk_down_only_because_its_parent_is_stays_in_the_proxy(tmp_path: Path) -> None:
    """The appliance loses its way to the primary (its uplink, a tcp target trunk-ct
    ``depends_on``, goes down first; then the probes to the trunk go unanswered) while
    Kamailio still reaches the trunk: trunk-ct is down ``affected_by`` uplink and stays
    in the proxy, and calls keep reaching it."""
    uplink = socket.socket()
    uplink.bind(("127.0.0.1", free_port()))
    uplink.listen(16)
    with (
        contextlib.closing(uplink),
        lab(tmp_path) as lb,
        DroppingUdpRelay(("127.0.0.1", lb.primary.port), drop_first=0) as path,
        Appliance(
            tmp_path,
            config(
                lb,
                primary_probe=f"sip:127.0.0.1:{path.port}",
                uplink_port=uplink.getsockname()[1],
            ),
        ) as app,
    ):

        def health(target: str) -> str:
            status, body = app.api("GET", f"/api/v1/targets/{target}")
            return str(body["health"]) if status == 200 else "not observed yet"

        wait_for("trunk-ct up", lambda: health("trunk-ct") == "up", 15)
        wait_for("uplink up", lambda: health("uplink") == "up", 15)
        uplink.close()  # the appliance's uplink goes down...
        wait_for("uplink down", lambda: health("uplink") == "down", 15)
        path.drop_first = -1  # ...and with it the appliance's path to the trunk
        wait_for("trunk-ct down", lambda: health("trunk-ct") == "down", 15)
        note = "trunk-ct is down because uplink is: not taken out"
        wait_for("the decision under a down parent", lambda: note in app.text(), 10)

        target = app.get("/api/v1/targets/trunk-ct")
        assert target["affected_by"] == "uplink"
        assert target["transitions"][0]["to"] == "down"
        assert target["transitions"][0]["affected_by"] == "uplink"
        assert path.dropped > 0
        assert lb.flags() == ["AX", "AX"]
        assert members(app)["trunk-ct"]["wanted"] == "active"
        assert not audited(app, "failover.disable")
        lb.calls("parent-down", reach=lb.primary)  # the trunk itself is fine
        app.stop()


@pytest.mark.e2e
def test_a_kamailio_restart_that_forgets_the_state_is_set_right_again(tmp_path: Path) -> None:
    with (
        lab(tmp_path) as lb,
        Appliance(tmp_path, config(lb, verify_every="2s")) as app,
    ):
        lb.kill_primary()
        wait_for("the primary to be taken out", lambda: lb.flags() == ["IX", "AX"], 15)

        # Same config and list file: it forgets the "i". (Not read back here: Dialwatch's
        # next verify may come at any moment; its audit entry below says what it read.)
        lb.proxy.restart()
        wait_for("the state to be set again", lambda: lb.flags() == ["IX", "AX"], TICK + 2.0 + 5)
        lb.calls("after-restart", reach=lb.backup)

        [restore] = audited(app, "failover.restore")
        assert restore["result"] == "ok"
        assert "the proxy had trunk-ct active" in restore["detail"]  # the restart forgot
        assert "set inactive again" in restore["detail"]
        assert members(app)["trunk-ct"]["wanted"] == "inactive"
        assert len(audited(app, "failover.disable")) == 1  # restored, not decided again
        app.stop()
