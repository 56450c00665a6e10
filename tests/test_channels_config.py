"""The ``channels:`` section: built from ``notify.channels.CHANNELS`` through the extension
point of ``monitor.config.schema.config_model``, strict like every section, and never
showing a channel's password or secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dialwatch.schema import SECTIONS, Config
from monitor.config import ConfigError, load_config
from monitor.config.loader import load_config_isolated
from monitor.config.rules import RuleConfig
from monitor.config.schema import Config as MonitorConfig
from monitor.config.schema import Section, config_model
from notify.channels import build_channel
from notify.channels.email import EmailChannel, EmailChannelConfig
from notify.channels.webhook import WebhookChannel, WebhookChannelConfig

PASSWORD = "smtp-Pa55-word-9"
HOOK_SECRET = "hook-secret-0123456789"

CHANNELS_YAML = """\
channels:
  - id: mail
    kind: email
    from: "NOC <noc@example.cn>"
    smtp: {host: smtp.example.cn, port: 465, tls: implicit, username: noc, password: "${SMTP_PASSWORD}"}
  - id: relay
    kind: email
    from: noc@example.cn
    smtp: {host: 127.0.0.1, tls: none}
  - id: hook
    kind: webhook
    url: https://hooks.example.cn/dialwatch
    secret: %s
"""


def write(tmp_path: Path) -> Path:
    path = tmp_path / "dialwatch.yaml"
    path.write_text(CHANNELS_YAML % HOOK_SECRET, encoding="utf-8")
    return path


def test_channels_load_into_their_kinds_models_and_build_their_channels(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path), env={"SMTP_PASSWORD": PASSWORD}, schema=Config)
    mail, relay, hook = loaded.config.channels  # type: ignore[attr-defined]
    assert isinstance(mail, EmailChannelConfig) and isinstance(hook, WebhookChannelConfig)
    assert mail.smtp.password == PASSWORD and mail.from_ == "NOC <noc@example.cn>"
    assert relay.smtp.server == "127.0.0.1:25" and mail.smtp.server == "smtp.example.cn:465"
    assert hook.secret == HOOK_SECRET and hook.allow_private is False
    assert isinstance(build_channel(mail), EmailChannel)
    assert isinstance(build_channel(hook), WebhookChannel)


def test_no_password_or_secret_in_repr_redacted_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = load_config(write(tmp_path), env={"SMTP_PASSWORD": PASSWORD}, schema=Config)
    channels = loaded.config.channels  # type: ignore[attr-defined]
    logging.getLogger("test").warning("config %r %s %r", loaded.config, channels, channels)
    shown = [repr(loaded.config), str(loaded.redacted()), caplog.text]
    shown += [repr(build_channel(c)) for c in channels]
    for text in shown:
        assert PASSWORD not in text and HOOK_SECRET not in text
    redacted = loaded.redacted()["channels"]
    assert redacted[0]["smtp"]["password"] == "***"
    assert redacted[0]["from"] == "NOC <noc@example.cn>"
    assert redacted[2]["secret"] == "***"


def test_the_isolated_loader_takes_the_build_schema_with_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)  # the child reads the environment
    loaded = load_config_isolated(write(tmp_path), schema=Config)
    assert [c.id for c in loaded.config.channels] == ["mail", "relay", "hook"]  # type: ignore[attr-defined]


def test_a_missing_secret_is_an_error_that_does_not_echo_the_others(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path), env={}, schema=Config)
    assert list(loaded.disabled) == [
        f"{tmp_path / 'dialwatch.yaml'}:5: channels[0].smtp.password: "
        "environment variable SMTP_PASSWORD is not set"
    ]


def test_monitor_alone_knows_no_channels_section(tmp_path: Path) -> None:
    assert "channels" not in MonitorConfig.model_fields
    assert MonitorConfig.sections == {}
    assert Config.sections == SECTIONS
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path), env={"SMTP_PASSWORD": PASSWORD})
    assert raised.value.errors[0].endswith(
        "channels: unknown key; allowed: " + ", ".join(sorted(MonitorConfig.model_fields))
    )


def test_a_section_may_not_take_the_name_of_one_of_monitors() -> None:
    with pytest.raises(ValueError, match="section 'targets' is taken"):
        config_model(RuleConfig, sections={"targets": Section(int, "numbers")})
    assert config_model(RuleConfig) is MonitorConfig


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        pytest.param(
            {"kind": "webhook", "url": "ftp://hooks.example.cn/x", "secret": HOOK_SECRET},
            "channels[0].url: must be an http:// or https:// URL, e.g. https://hooks.example.cn/x",
            id="webhook-not-http",
        ),
        pytest.param(
            {"kind": "webhook", "url": "https://u:p@hooks.example.cn/", "secret": HOOK_SECRET},
            "channels[0].url: must not hold a user or password (put credentials in their own keys)",
            id="webhook-credentials-in-url",
        ),
        pytest.param(
            {"kind": "webhook", "url": "https://hooks.example.cn/", "secret": "short"},
            "channels[0].secret: must have at least 16 characters",
            id="webhook-short-secret",
        ),
        pytest.param(
            {"kind": "email", "from": "not an address", "smtp": {"host": "mx"}},
            "channels[0].from: must be an e-mail address, like NOC <noc@example.cn>",
            id="email-bad-from",
        ),
        pytest.param(
            {"kind": "email", "from": "a@b.cn", "smtp": {"host": "mx", "tls": "ssl"}},
            "channels[0].smtp.tls: must be one of: starttls, implicit, none",
            id="email-unknown-tls-mode",
        ),
        pytest.param(
            {"kind": "email", "from": "a@b.cn", "smtp": {"host": "mx", "username": "noc"}},
            "channels[0].smtp.password: required when a username is given",
            id="email-username-without-password",
        ),
    ],
)
def test_bad_channel_entries_name_the_key(tmp_path: Path, entry: dict, error: str) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"channels": [{"id": "c", **entry}]}), encoding="utf-8")
    loaded = load_config(path, env={}, schema=Config)
    assert [e.split(": ", 1)[1] for e in loaded.disabled] == [error]
    [channel] = loaded.config.channels  # type: ignore[attr-defined]
    assert channel.kind == "disabled" and error in channel.reason


DOCS = Path(__file__).resolve().parent.parent / "docs"
SMS_ENV = {
    "ALIYUN_AK": "LTAI5tExampleKeyId",
    "ALIYUN_SK": "aliyun-Secret-0123456789",
    "TC_SECRET_ID": "AKIDexample0123",
    "TC_SECRET_KEY": "tencent-Key-0123456789",
    "TWILIO_TOKEN": "twilio-Token-0123456789",
    "SMS_GW_TOKEN": "gateway-Bearer-0123456789",
    "DINGTALK_URL": "https://oapi.dingtalk.com/robot/send?access_token=0123abcd",
    "DINGTALK_SECRET": "SEC0123456789abcdef",
    "WECOM_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0123-abcd",
    "FEISHU_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/0123-abcd",
    "FEISHU_SECRET": "feishu-secret-0123",
    "LARK_URL": "https://open.larksuite.com/open-apis/bot/v2/hook/0123-abcd",
    "TELEGRAM_URL": "tgram://123456789:AAHexampleToken_0123/-1001234567",
    "SLACK_URL": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#noc",
}


@pytest.mark.parametrize(
    "page",
    [
        "notify.md",
        "channels/email.md",
        "channels/webhook.md",
        "channels/sms.md",
        "channels/dingtalk.md",
        "channels/wecom.md",
        "channels/feishu.md",
        "channels/apprise.md",
    ],
)
def test_every_yaml_example_in_the_notification_docs_loads(tmp_path: Path, page: str) -> None:
    from tests.test_config_reference import yaml_blocks

    blocks = yaml_blocks((DOCS / page).read_text(encoding="utf-8"))
    assert blocks
    env = {"SMTP_PASSWORD": PASSWORD, "WEBHOOK_SECRET": HOOK_SECRET} | SMS_ENV
    for index, block in enumerate(blocks):
        path = tmp_path / f"example-{index}.yaml"
        path.write_text(block, encoding="utf-8")
        assert load_config(path, env=env, schema=Config).config.channels  # type: ignore[attr-defined]


def test_every_channel_kind_has_its_page() -> None:
    from notify.channels import CHANNELS

    for kind in CHANNELS:
        assert (DOCS / "channels" / f"{kind}.md").is_file(), kind


def test_sms_entries_load_as_their_providers_models_and_never_show_a_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_config_reference import yaml_blocks

    [block] = yaml_blocks((DOCS / "channels" / "sms.md").read_text(encoding="utf-8"))[:1]
    path = tmp_path / "dialwatch.yaml"
    path.write_text(block, encoding="utf-8")
    loaded = load_config(path, env=SMS_ENV, schema=Config)
    channels = loaded.config.channels  # type: ignore[attr-defined]
    from notify.channels.sms import SmsChannel
    from notify.channels.sms.aliyun import AliyunSmsConfig
    from notify.channels.sms.gateway import GatewaySmsConfig
    from notify.channels.sms.tencent import TencentSmsConfig
    from notify.channels.sms.twilio import TwilioSmsConfig

    assert [type(c) for c in channels] == [
        AliyunSmsConfig, TencentSmsConfig, TwilioSmsConfig, GatewaySmsConfig
    ]  # fmt: skip
    assert channels[0].access_key_secret == SMS_ENV["ALIYUN_SK"]
    assert channels[3].secret_headers == {"Authorization": f"Bearer {SMS_ENV['SMS_GW_TOKEN']}"}
    logging.getLogger("test").warning("config %r %s", loaded.config, channels)
    shown = [repr(loaded.config), str(loaded.redacted()), caplog.text]
    shown += [repr(build_channel(c)) for c in channels]
    assert all(isinstance(build_channel(c), SmsChannel) for c in channels)
    for text in shown:
        for key, secret in SMS_ENV.items():
            if key not in ("ALIYUN_AK", "TC_SECRET_ID"):
                assert secret not in text, key
    redacted = loaded.redacted()["channels"]
    assert redacted[0]["access_key_secret"] == "***" and redacted[2]["auth_token"] == "***"
    assert redacted[3]["secret_headers"] == "***"


def _write_yaml(tmp_path: Path, data: dict) -> Path:
    import yaml

    path = tmp_path / "dialwatch.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


BAD_MAIL = {"id": "mail", "kind": "email", "from": "NOC <noc@example.cn>", "smtp": {"prot": 1}}
GOOD_HOOK = {"id": "hook", "kind": "webhook", "url": "https://h.example.cn/", "secret": HOOK_SECRET}


def test_a_bad_channel_entry_is_off_and_the_rest_loads(tmp_path: Path) -> None:
    person = {"id": "zhang", "user": "zhang", "name": "张伟", "contact": ["mail", "hook"]}
    loaded = load_config(
        _write_yaml(tmp_path, {"channels": [BAD_MAIL, GOOD_HOOK], "people": [person]}),
        env={},
        schema=Config,
    )
    mail, hook = loaded.config.channels  # type: ignore[attr-defined]
    assert (mail.id, mail.kind) == ("mail", "disabled")
    assert isinstance(hook, WebhookChannelConfig)
    assert loaded.config.people[0].contact == ["mail", "hook"]  # type: ignore[attr-defined]
    assert [line.split(": ", 1)[1] for line in loaded.disabled] == [
        "channels[0].smtp.host: required",
        "channels[0].smtp.prot: unknown key; allowed: ca_file, helo, host, password, port, "
        "timeout, tls, username, verify_tls",
    ]
    from notify.channels import ChannelOff

    with pytest.raises(ChannelOff, match="its config does not load: .*smtp.prot: unknown key"):
        build_channel(mail)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(
            {"channels": [{"kind": "email"}, GOOD_HOOK]}, "channels[0].id: required", id="no-id"
        ),
        pytest.param(
            {"channels": [BAD_MAIL, {**GOOD_HOOK, "id": "mail"}]},
            "channels[1].id: duplicate channel id 'mail'",
            id="duplicate-id",
        ),
        pytest.param(
            {"channels": [BAD_MAIL], "targets": [{"id": "t", "kind": "tcp"}]},
            "targets[0].address: required",
            id="bad-target-too",
        ),
    ],
)
def test_a_bad_channel_still_refuses_the_config_when_something_else_is_wrong(
    tmp_path: Path, data: dict, error: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(_write_yaml(tmp_path, data), env={}, schema=Config)
    assert any(error in line for line in raised.value.errors), raised.value.errors


def test_check_config_reports_an_off_channel_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.config.loader import check_config_main

    path = _write_yaml(tmp_path, {"channels": [BAD_MAIL, GOOD_HOOK]})
    assert check_config_main(path, schema=Config) == 2
    err = capsys.readouterr().err
    assert "channels[0].smtp.prot: unknown key" in err
    assert "2 error(s); the appliance would run with those entries off" in err
