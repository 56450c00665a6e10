"""Staff users, passwords, tokens, sessions and the second factor, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine, select, update

from core.secret_box import SecretBox
from monitor import audit
from monitor.staff import passwords, second_factor, sessions, tokens, users
from monitor.staff.roles import at_least, lower
from monitor.store.models import AuditEntry, StaffUser
from monitor.store.repository import NotFound, StateRepository

T0 = 1_790_000_000.0
GOOD = "correct horse battery"
POLICY = sessions.SessionPolicy(idle=3600.0, max_age=8 * 3600.0)


@pytest.fixture
def repo(db: Engine) -> StateRepository:
    return StateRepository(db)


def actions(repo: StateRepository) -> list[tuple[str, str, str]]:
    with repo.engine.connect() as conn:
        rows = conn.execute(select(AuditEntry).order_by(AuditEntry.id)).all()
    return [(r.actor, r.action, r.result) for r in rows]


# -- roles and the password policy (pure) -------------------------------------------
@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        ("admin", "operator", True),
        ("operator", "operator", True),
        ("viewer", "operator", False),
        ("operator", "admin", False),
        ("root", "viewer", False),
    ],
)
def test_a_role_may_do_what_the_ones_below_it_may(role: str, needed: str, allowed: bool) -> None:
    assert at_least(role, needed) is allowed


def test_a_token_role_never_exceeds_its_owner() -> None:
    assert lower("admin", "viewer") == "viewer"
    assert lower("operator", "admin") == "operator"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short1!", "at least 12 characters"),
        ("alice-is-my-name", "must not contain the user name"),
        ("qwertyuiop123", "common passwords"),
        ("password1234!", "common passwords"),
        ("aaaaaaaaaaaaaaaa", "4 different characters"),
        ("x" * 300, "at most 256"),
    ],
)
def test_the_password_policy_names_what_is_wrong(password: str, problem: str) -> None:
    assert any(problem in p for p in passwords.policy_problems("alice", password))


def test_a_good_password_passes_the_policy() -> None:
    assert passwords.policy_problems("alice", GOOD) == []


def test_passwords_are_argon2id_and_verify() -> None:
    hashed = passwords.hash_password(GOOD)
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(hashed, GOOD)
    assert not passwords.verify_password(hashed, GOOD + "x")
    assert not passwords.verify_password(None, GOOD)
    assert not passwords.needs_rehash(hashed)


# -- users --------------------------------------------------------------------------
def test_add_user_stores_a_hash_and_audits(repo: StateRepository) -> None:
    alice = users.add_user(repo, "cli", "Alice", "admin", GOOD, at=T0)
    assert (alice.name, alice.role, alice.disabled) == ("alice", "admin", False)
    with repo.engine.connect() as conn:
        stored = conn.execute(select(StaffUser.password_hash)).scalar_one()
    assert GOOD not in stored and stored.startswith("$argon2id$")
    assert actions(repo) == [("cli", "user.add", "ok")]


@pytest.mark.parametrize(
    ("name", "role", "password", "error"),
    [
        ("bad name", "admin", GOOD, "user name"),
        ("bob", "root", GOOD, "role must be one of viewer, operator, admin"),
        ("bob", "viewer", "short", "at least 12"),
    ],
)
def test_add_user_refuses_bad_input_and_writes_nothing(
    repo: StateRepository, name: str, role: str, password: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        users.add_user(repo, "cli", name, role, password, at=T0)
    with repo.engine.connect() as conn:
        assert users.count_users(conn) == 0
    assert actions(repo) == []


def test_a_user_name_is_taken_once(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    with pytest.raises(ValueError, match="exists already"):
        users.add_user(repo, "cli", "ALICE", "viewer", GOOD, at=T0)


def test_login_checks_password_and_disabled(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    users.add_user(repo, "cli", "bob", "operator", GOOD, at=T0)
    assert users.check_login(repo, "alice", GOOD).name == "alice"  # type: ignore[union-attr]
    assert users.check_login(repo, "alice", "wrong password!") is None
    assert users.check_login(repo, "nobody", GOOD) is None
    users.disable_user(repo, "user:alice", "bob", at=T0)
    assert users.check_login(repo, "bob", GOOD) is None


def test_the_last_admin_cannot_be_disabled_or_demoted(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    with pytest.raises(ValueError, match="last admin"):
        users.disable_user(repo, "cli", "alice", at=T0)
    with pytest.raises(ValueError, match="last admin"):
        users.set_role(repo, "cli", "alice", "viewer", at=T0)
    users.add_user(repo, "cli", "bob", "admin", GOOD, at=T0)
    users.set_role(repo, "cli", "alice", "viewer", at=T0)


def test_an_old_hash_is_remade_at_login(repo: StateRepository) -> None:
    from argon2 import PasswordHasher

    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(GOOD)
    with repo.transaction() as conn:
        conn.execute(update(StaffUser).values(password_hash=weak))
    assert users.check_login(repo, "alice", GOOD) is not None
    with repo.engine.connect() as conn:
        remade = conn.execute(select(StaffUser.password_hash)).scalar_one()
    assert remade != weak and not passwords.needs_rehash(remade)


# -- sessions -----------------------------------------------------------------------
def test_a_session_expires_when_idle_and_at_its_max_age(repo: StateRepository) -> None:
    alice = users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    cookie = sessions.start(repo, alice.id, stage="full", policy=POLICY, at=T0)
    assert sessions.resolve(repo, cookie, policy=POLICY, at=T0 + 10).user == "alice"  # type: ignore[union-attr]
    # Each request within the idle time keeps it alive...
    at = T0
    for _ in range(7):
        at += 3000
        assert sessions.resolve(repo, cookie, policy=POLICY, at=at) is not None
    # ...but not past the absolute end.
    assert sessions.resolve(repo, cookie, policy=POLICY, at=T0 + 8 * 3600 + 1) is None
    other = sessions.start(repo, alice.id, stage="full", policy=POLICY, at=T0)
    assert sessions.resolve(repo, other, policy=POLICY, at=T0 + 3601) is None


def test_a_kiosk_session_has_no_idle_expiry(repo: StateRepository) -> None:
    viewer = users.add_user(repo, "cli", "wall", "viewer", GOOD, at=T0)
    cookie = sessions.start(repo, viewer.id, stage="full", policy=POLICY, kiosk=True, at=T0)
    assert sessions.resolve(repo, cookie, policy=POLICY, at=T0 + 7 * 3600) is not None


def test_sessions_end_at_logout_password_change_and_disable(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    bob = users.add_user(repo, "cli", "bob", "operator", GOOD, at=T0)
    one = sessions.start(repo, bob.id, stage="full", policy=POLICY, at=T0)
    two = sessions.start(repo, bob.id, stage="full", policy=POLICY, at=T0)
    three = sessions.start(repo, bob.id, stage="full", policy=POLICY, at=T0)
    assert sessions.end(repo, sessions.session_key(one), "user:bob", at=T0 + 1)
    assert sessions.resolve(repo, one, policy=POLICY, at=T0 + 2) is None
    users.set_password(repo, "user:bob", "bob", "another good passphrase", at=T0 + 3)
    assert sessions.resolve(repo, two, policy=POLICY, at=T0 + 4) is None
    four = sessions.start(repo, bob.id, stage="full", policy=POLICY, at=T0 + 5)
    assert sessions.end_all_of(repo, "user:alice", "bob", at=T0 + 6) == 1
    assert sessions.resolve(repo, four, policy=POLICY, at=T0 + 7) is None
    assert sessions.resolve(repo, three, policy=POLICY, at=T0 + 7) is None


def test_the_db_holds_only_a_hash_of_the_cookie(repo: StateRepository) -> None:
    alice = users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    cookie = sessions.start(repo, alice.id, stage="full", policy=POLICY, at=T0)
    with repo.engine.connect() as conn:
        keys = [r.id for r in sessions.list_live(conn, at=T0)]
    assert keys == [sessions.session_key(cookie)] and cookie not in keys


# -- tokens -------------------------------------------------------------------------
def test_a_token_authenticates_with_the_lower_role(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    info, value = tokens.create_token(repo, "cli", "alice", role="operator", at=T0)
    assert value.startswith("dw_") and len(value) >= 40
    who = tokens.authenticate(repo, value, at=T0 + 1)
    assert who is not None and (who.user, who.role) == ("alice", "operator")
    assert tokens.authenticate(repo, value + "x", at=T0 + 1) is None
    users.add_user(repo, "cli", "bob", "admin", GOOD, at=T0)
    users.set_role(repo, "cli", "alice", "viewer", at=T0 + 2)
    assert tokens.authenticate(repo, value, at=T0 + 3).role == "viewer"  # type: ignore[union-attr]
    tokens.revoke_token(repo, "cli", info.id, at=T0 + 4)
    assert tokens.authenticate(repo, value, at=T0 + 5) is None


def test_a_token_cannot_exceed_its_owner_and_expires(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    users.add_user(repo, "cli", "vic", "viewer", GOOD, at=T0)
    with pytest.raises(ValueError, match="more than its owner's role"):
        tokens.create_token(repo, "cli", "vic", role="admin", at=T0)
    _info, value = tokens.create_token(repo, "cli", "vic", expires_in=60, at=T0)
    assert tokens.authenticate(repo, value, at=T0 + 59) is not None
    assert tokens.authenticate(repo, value, at=T0 + 60) is None


def test_last_used_is_written_at_most_once_a_minute(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    info, value = tokens.create_token(repo, "cli", "alice", at=T0)
    for dt in (1, 20, 59):
        tokens.authenticate(repo, value, at=T0 + dt)
    with repo.engine.connect() as conn:
        assert tokens.list_tokens(conn)[0].last_used_at == T0 + 1
    tokens.authenticate(repo, value, at=T0 + 62)
    with repo.engine.connect() as conn:
        assert tokens.list_tokens(conn)[0].last_used_at == T0 + 62
    assert info.state(T0) == "active"


def test_a_token_is_stored_as_sha256_only(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    _info, value = tokens.create_token(repo, "cli", "alice", at=T0)
    with repo.engine.connect() as conn:
        dump = " ".join(str(v) for r in conn.execute(select(tokens.TOKEN)) for v in r)
    assert value not in dump and tokens.token_hash(value) in dump


# -- second factor ------------------------------------------------------------------
def test_totp_enrolment_login_and_no_replay(repo: StateRepository, tmp_path: Path) -> None:
    box = SecretBox.from_file(tmp_path / "keys" / "appliance.key")
    alice = users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    uri, qr = second_factor.begin(repo, box, "user:alice", "alice", issuer="NOC", at=T0)
    assert uri.startswith("otpauth://totp/NOC:alice?") and qr.startswith("data:image/svg+xml")
    seed = pyotp.parse_uri(uri).secret
    with repo.engine.connect() as conn:
        stored = conn.execute(select(StaffUser.totp_secret)).scalar_one()
    assert seed not in stored and stored.startswith("dwsb1:")
    with pytest.raises(ValueError, match="not the current one"):
        second_factor.confirm(repo, box, "user:alice", "alice", "000000", at=T0)
    first = pyotp.TOTP(seed).at(T0)
    codes = second_factor.confirm(repo, box, "user:alice", "alice", first, at=T0)
    assert len(codes) == 10
    # The code that confirmed it is spent; the next step's code passes once.
    assert second_factor.check(repo, box, alice.id, first, at=T0 + 1) is None
    nxt = pyotp.TOTP(seed).at(T0 + 30)
    assert second_factor.check(repo, box, alice.id, nxt, at=T0 + 31) == "totp"
    assert second_factor.check(repo, box, alice.id, nxt, at=T0 + 32) is None
    # A recovery code works once, in any case and with or without its dashes.
    assert second_factor.check(repo, box, alice.id, codes[0].upper(), at=T0 + 40) == "recovery"
    assert second_factor.check(repo, box, alice.id, codes[0], at=T0 + 41) is None
    assert second_factor.check(repo, box, alice.id, codes[1].replace("-", ""), at=T0 + 42)


def test_a_seed_does_not_open_with_another_key(repo: StateRepository, tmp_path: Path) -> None:
    from core.secret_box import SecretBoxError

    box = SecretBox.from_file(tmp_path / "a.key")
    alice = users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    uri, _qr = second_factor.begin(repo, box, "cli", "alice", issuer="NOC", at=T0)
    code = pyotp.TOTP(pyotp.parse_uri(uri).secret).at(T0)
    second_factor.confirm(repo, box, "cli", "alice", code, at=T0)
    other = SecretBox.from_file(tmp_path / "b.key")
    with pytest.raises(SecretBoxError, match="does not open with this key file"):
        second_factor.check(repo, other, alice.id, "123456", at=T0 + 30)


# -- audit entries of it all ------------------------------------------------------------
def test_every_change_is_audited_and_the_chain_holds(repo: StateRepository) -> None:
    users.add_user(repo, "cli", "alice", "admin", GOOD, at=T0)
    users.add_user(repo, "user:alice", "bob", "viewer", GOOD, at=T0 + 1)
    users.set_role(repo, "user:alice", "bob", "operator", at=T0 + 2)
    info, _v = tokens.create_token(repo, "user:alice", "bob", at=T0 + 3)
    tokens.revoke_token(repo, "user:alice", info.id, at=T0 + 4)
    users.disable_user(repo, "user:alice", "bob", at=T0 + 5)
    assert [a for _actor, a, _r in actions(repo)] == [
        "user.add",
        "user.add",
        "user.role",
        "token.create",
        "token.revoke",
        "user.disable",
    ]
    with repo.engine.connect() as conn:
        check = audit.verify(conn)
    assert (check.checked, check.broken_at) == (6, None)


def test_no_such_user_is_a_not_found(repo: StateRepository) -> None:
    with pytest.raises(NotFound):
        users.set_role(repo, "cli", "ghost", "viewer", at=T0)
    with pytest.raises(NotFound):
        tokens.create_token(repo, "cli", "ghost", at=T0)
