import pytest
import yaml
from kubecost_etl.config import ConfigError, load_config, parse_config

GOOD = {
    "backup_schedule": "0 2 * * *",
    "defaults": {
        "namespace": "kubecost",
        "backup": {"object_store": {"conn_id": "aws_backups", "bucket": "b"}},
    },
    "clusters": [
        {"id": "prod-east", "kubeconfig": "kube/prod.yaml", "context": "prod"},
        {"id": "dev", "kubernetes_conn_id": "k8s_dev", "backup": {"compression": "gzip"}},
    ],
}


def test_good_config_merges_defaults_and_resolves_relative_paths(tmp_path):
    path = tmp_path / "kubecost-etl.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    config = load_config(path)
    assert config.cluster_ids() == ["prod-east", "dev"]
    prod = config.cluster("prod-east")
    assert prod.kubeconfig == str(tmp_path / "kube/prod.yaml")
    assert prod.backup.object_store.bucket == "b"
    assert prod.backup.compression == "zstd" and prod.backup.compression_level == 3
    dev = config.cluster("dev")
    assert dev.backup.compression == "gzip" and dev.backup.compression_level == 6
    assert config.backup_schedule == "0 2 * * *"
    assert prod.repair.max_window_days == 31  # defaults when no repair: section is given


def test_config_file_reference_must_be_readable(tmp_path):
    store = tmp_path / "object-store.yaml"
    store.write_text("type: FILESYSTEM\nconfig: {directory: /tmp/x}\n")
    raw = {"clusters": [{"id": "a", "backup": {"object_store": {"config_file": "object-store.yaml"}}}]}
    assert load_config_from(tmp_path, raw).cluster("a").backup.object_store.config_file == str(store)
    raw["clusters"][0]["backup"]["object_store"]["config_file"] = "missing.yaml"
    with pytest.raises(ConfigError, match=r"cluster 'a': backup.object_store: config_file: .*missing.yaml"):
        load_config_from(tmp_path, raw)


def load_config_from(directory, raw):
    path = directory / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["clusters"].append({"id": "dev"}), r"cluster 'dev': id: duplicate"),
        (
            lambda c: c["clusters"][0].update(colour="red"),
            r"cluster 'prod-east': unknown key\(s\) \['colour'\]",
        ),
        (lambda c: c["clusters"][0].update(id="Prod East"), r"clusters\[0\]: id: 'Prod East' is not a valid"),
        (
            lambda c: c["clusters"][1].update(backup={"compression": "lz4"}),
            r"cluster 'dev': backup.compression",
        ),
        (
            lambda c: c["defaults"]["backup"]["object_store"].pop("bucket"),
            r"cluster 'prod-east': backup.object_store: bucket: missing",
        ),
        (
            lambda c: c["clusters"][1].update(kubeconfig="x"),
            r"cluster 'dev': kubernetes_conn_id and kubeconfig",
        ),
        (
            lambda c: c["clusters"][0].update(etl_path="var/db"),
            r"cluster 'prod-east': etl_path: must be an absolute",
        ),
        (lambda c: c.update(clusters=[]), r"clusters: expected a non-empty list"),
        (lambda c: c.update(extra=1), r"unknown key\(s\) \['extra'\]"),
        (
            lambda c: c["clusters"][0].update(hourly_hours=0),
            r"cluster 'prod-east': hourly_hours: expected a positive",
        ),
        (
            lambda c: c["defaults"].update(debug_container_seconds="4h"),
            r"cluster 'prod-east': debug_container_seconds: expected a positive",
        ),
        (lambda c: c["defaults"].pop("backup"), r"cluster 'dev': backup.object_store: missing"),
        (
            lambda c: c["clusters"][0].update(repair={"max_window_day": 3}),
            r"cluster 'prod-east': repair: unknown key",
        ),
        (
            lambda c: c["defaults"].update(repair={"prometheus_retention": "forever"}),
            r"cluster 'prod-east': repair.prometheus_retention",
        ),
        (lambda c: c["clusters"][1].update(repair=["x"]), r"cluster 'dev': repair: expected a mapping"),
        (
            lambda c: c["clusters"][1].update(backup={"hash_in_pod": True}),
            r"cluster 'dev': backup: unknown key\(s\) \['hash_in_pod'\]",
        ),
        (
            lambda c: c["clusters"][0].update(use_debug_container="maybe"),
            r"use_debug_container: 'maybe' is not one of auto, always, never",
        ),
        (
            lambda c: c.update(alerts={"notifier": "pager"}),
            r"alerts.notifier: 'pager' is not one of none, slack, email",
        ),
        (
            lambda c: c.update(alerts={"notifier": "email", "email_to": [3]}),
            r"alerts.email_to: expected an address",
        ),
        (
            lambda c: c.update(backup_schedule="0 25 * * *"),
            r"backup_schedule: '0 25 \* \* \*' is not a valid cron expression",
        ),
        (
            lambda c: c.update(backup_schedule="61 * * * *"),
            r"backup_schedule: '61 \* \* \* \*' is not a valid cron",
        ),
        (
            lambda c: c.update(backup_schedule="0 0 * * * *"),
            r"backup_schedule: '0 0 \* \* \* \*' has 6 field\(s\)",
        ),
        (
            lambda c: c.update(backup_schedule="@midnight"),
            r"backup_schedule: '@midnight' is not an Airflow preset",
        ),
        (lambda c: c.update(backup_schedule=5), r"backup_schedule: expected a cron expression"),
    ],
)
def test_every_mistake_names_the_cluster_and_field(mutate, message):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_unreadable_and_invalid_files(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    monkeypatch.delenv("KUBECOST_ETL_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="KUBECOST_ETL_CONFIG is not set"):
        load_config()


def test_cluster_lookup():
    config = parse_config(GOOD)
    with pytest.raises(ConfigError, match=r"unknown cluster 'nope'; configured: \['prod-east', 'dev'\]"):
        config.cluster("nope")
    with pytest.raises(ConfigError, match="name a cluster"):
        config.cluster(None)
    single = parse_config({"clusters": [{"id": "only"}]})
    assert single.cluster(None).id == "only"
    assert [c.id for c in config.select(["dev"])] == ["dev"]


def test_alert_settings_are_readable_even_when_the_rest_is_wrong(tmp_path):
    from kubecost_etl.config import load_alert_settings

    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "alerts": {"notifier": "email", "email_to": "ops@example.com"},
                "clusters": [{"id": "a"}, {"id": "a"}],
            }
        )
    )
    with pytest.raises(ConfigError, match="duplicate"):
        load_config(path)
    assert load_alert_settings(path).email_to == ("ops@example.com",)


@pytest.mark.parametrize(
    "schedule",
    [
        None,
        "@once",
        "@continuous",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@quarterly",
        "@yearly",
        "*/15 * * * *",
        "30 2 * * 1-5",
        "0 0 1 jan *",
    ],
)
def test_valid_schedules(schedule):
    assert parse_config({**GOOD, "backup_schedule": schedule}).backup_schedule == schedule


def test_fixed_value_sets_are_str_enums_that_compare_and_serialise_as_text():
    import json

    from kubecost_etl.config import Compression, DebugContainer, Notifier

    config = parse_config({**GOOD, "alerts": {"notifier": "slack"}})
    dev = config.cluster("dev")
    assert dev.backup.compression is Compression.GZIP and dev.backup.compression == "gzip"
    assert dev.use_debug_container is DebugContainer.AUTO and config.alerts.notifier is Notifier.SLACK
    assert json.dumps({"c": dev.backup.compression}) == '{"c": "gzip"}'


def test_duplicate_clusters_in_a_trigger_are_refused():
    from kubecost_etl.errors import ParamsError, Refusal

    config = parse_config(GOOD)
    with pytest.raises(ParamsError, match=r"clusters: \['dev'\] named more than once") as refused:
        config.select(["dev", "prod-east", "dev"])
    assert isinstance(refused.value, Refusal)


def test_settings_reprs_never_show_inline_store_secrets():
    raw = {
        "clusters": [
            {
                "id": "a",
                "backup": {
                    "object_store": {
                        "type": "S3",
                        "config": {
                            "bucket": "b",
                            "access_key": "AKIAIOSFODNN7EXAMPLE",
                            "secret_key": "Zq8TkXr2Wv9",
                        },
                    }
                },
            }
        ]
    }
    cluster = parse_config(raw).cluster("a")
    for text in (repr(cluster), str(cluster), repr(cluster.backup), repr(cluster.backup.object_store)):
        assert "Zq8TkXr2Wv9" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    assert "inline={'type': 'S3', ...: <redacted>}" in repr(cluster.backup.object_store)


def test_a_yaml_mistake_names_the_line_but_never_quotes_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "clusters:\n  - id: a\n"
        '    backup: {object_store: {type: S3, config: {secret_key: "Zq8TkXr2Wv9" x}}}\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config(bad)
    assert "is not valid YAML: line 3, column" in str(refused.value) and "Zq8TkXr2Wv9" not in str(
        refused.value
    )
