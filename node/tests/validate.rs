//! `bftime validate`, `keygen` and `init-cluster` through the real binary: a bad file
//! exits 78 and the message names the field (ntpd-rs's `ctl.rs` habit).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_bftime");

fn init(dir: &Path) {
    let st = Command::new(BIN)
        .args([
            "init-cluster",
            "--nodes",
            "4",
            "--base-port",
            "7100",
            "--out",
        ])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

fn validate(cfg: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

#[test]
fn generated_cluster_validates() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    for k in 1..=4 {
        let (code, out, err) = validate(&d.path().join(format!("node-{k}.toml")));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!("ok: node-{k} is member {} of 4", k - 1)),
            "{out}"
        );
    }
    // The folder can move: paths are relative.
    let moved = tempfile::tempdir().unwrap();
    let target = moved.path().join("c");
    std::fs::rename(d.path(), &target).unwrap();
    let (code, _, err) = validate(&target.join("node-2.toml"));
    assert_eq!(code, 0, "{err}");
    // Names scripts rely on.
    let node = std::fs::read_to_string(target.join("node-1.toml")).unwrap();
    assert!(node.contains("api_listen = \"127.0.0.1:7104\""), "{node}");
    assert!(node.contains("audit_log = \"node-1.audit\""), "{node}");
}

#[test]
fn unknown_field_is_named() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cfg = d.path().join("node-1.toml");
    edit(&cfg, |t| format!("colour = \"blue\"\n{t}"));
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78);
    assert!(err.contains("`colour`"), "{err}");
    assert!(err.contains("node-1.toml"), "{err}");

    // In the cluster file too, inside a member table.
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    edit(&d.path().join("cluster.toml"), |t| {
        t.replacen("name = \"node-2\"", "name = \"node-2\"\nport = 7", 1)
    });
    let (code, _, err) = validate(&d.path().join("node-1.toml"));
    assert_eq!(code, 78);
    assert!(
        err.contains("`port`") && err.contains("cluster.toml"),
        "{err}"
    );
}

/// A value of the wrong type is reported by position only; the first line still names
/// the field, with its table (`member[1].public_key`).
#[test]
fn wrong_types_name_the_field() {
    /// The file to change, how, and what the first line of the error must say.
    type Case = (&'static str, fn(String) -> String, &'static str);
    let cases: [Case; 3] = [
        (
            "cluster.toml",
            |t| {
                let line = t.lines().find(|l| l.starts_with("precision_ms")).unwrap();
                t.replacen(line, "precision_ms = \"200\"", 1)
            },
            "field `precision_ms`",
        ),
        (
            "cluster.toml",
            |t| t.replacen("name = \"node-2\"", "name = 2", 1),
            "field `member[1].name`",
        ),
        (
            "node-1.toml",
            |t| {
                t.replacen(
                    "exit_on_quarantine = false",
                    "exit_on_quarantine = \"no\"",
                    1,
                )
            },
            "field `quarantine.exit_on_quarantine`",
        ),
    ];
    for (file, change, named) in cases {
        let d = tempfile::tempdir().unwrap();
        init(d.path());
        edit(&d.path().join(file), change);
        let (code, _, err) = validate(&d.path().join("node-1.toml"));
        assert_eq!(code, 78, "{err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(named), "{named} in {first:?}\n{err}");
    }
}

#[test]
fn missing_key_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    std::fs::remove_file(d.path().join("node-3.key")).unwrap();
    let (code, _, err) = validate(&d.path().join("node-3.toml"));
    assert_eq!(code, 78);
    assert!(err.contains("`key_file`"), "{err}");
    assert!(err.contains("bftime keygen"), "names the fix: {err}");
}

#[test]
fn bad_multiaddr_is_named() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    edit(&d.path().join("cluster.toml"), |t| {
        t.replacen("/ip4/127.0.0.1/tcp/7102", "/ip4/127.0.0.1/udp/7102", 1)
    });
    let (code, _, err) = validate(&d.path().join("node-1.toml"));
    assert_eq!(code, 78);
    assert!(err.contains("member[2].addresses[0]"), "{err}");

    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cfg = d.path().join("node-1.toml");
    edit(&cfg, |t| {
        t.replace("/ip4/127.0.0.1/tcp/7100", "not-an-address")
    });
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78);
    assert!(err.contains("`listen[0]`"), "{err}");
}

#[test]
fn remote_api_and_disabled_testing_are_refused() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cfg = d.path().join("node-1.toml");
    edit(&cfg, |t| t.replace("127.0.0.1:7104", "0.0.0.0:7104"));
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78);
    assert!(
        err.contains("`api_listen`") && err.contains("allow_remote_api"),
        "{err}"
    );
    edit(&cfg, |t| {
        format!(
            "allow_remote_api = true\n{}",
            t.replace("allow_remote_api = false\n", "")
        )
    });
    assert_eq!(validate(&cfg).0, 0);

    edit(&cfg, |t| format!("{t}\n[testing]\nenabled = false\n"));
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78);
    assert!(err.contains("testing.enabled"), "{err}");
}

#[test]
fn too_many_faults_and_duplicate_keys_are_refused() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    edit(&d.path().join("cluster.toml"), |t| {
        format!("faulty = 2\n{t}")
    });
    let (code, _, err) = validate(&d.path().join("node-1.toml"));
    assert_eq!(code, 78);
    assert!(err.contains("`faulty`"), "{err}");
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["keygen", "--json", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    assert!(v["peer_id"].as_str().unwrap().starts_with("12D3KooW"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn now_and_status_without_a_node_say_what_to_do() {
    let out = Command::new(BIN)
        .args(["now", "--api", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `bftime run` running"), "{err}");
}

#[test]
fn audit_settings_are_checked() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cfg = d.path().join("node-1.toml");
    edit(&cfg, |t| t.replace("max_file_mb = 64", "max_file_mb = 0"));
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78);
    assert!(err.contains("audit.max_file_mb"), "{err}");
    edit(&cfg, |t| {
        t.replace("max_file_mb = 0", "max_file_mb = 64")
            .replace("fsync = \"record\"", "fsync = \"sometimes\"")
    });
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78);
    assert!(err.contains("fsync") && err.contains("sometimes"), "{err}");
    // [audit] without audit_log: the settings would silently do nothing.
    let cfg2 = d.path().join("node-2.toml");
    edit(&cfg2, |t| {
        t.lines()
            .filter(|l| !l.starts_with("audit_log"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("fsync = \"record\"", "fsync = \"round\"")
    });
    let (code, _, err) = validate(&cfg2);
    assert_eq!(code, 78);
    assert!(err.contains("audit_log"), "{err}");
}

/// `init-cluster` refuses, as a usage error (exit 2) and before writing a file, what
/// `validate` would refuse in the cluster it writes, naming the flag.
#[test]
fn init_cluster_refuses_what_validate_would_before_writing() {
    let cases: [(&[&str], &str); 6] = [
        (&["--nodes", "0"], "--nodes"),
        (&["--nodes", "4", "--precision-ms", "0"], "--precision-ms"),
        (
            &["--nodes", "4", "--round-period-ms", "5"],
            "--round-period-ms",
        ),
        (
            &["--nodes", "4", "--startup-round-divisor", "0"],
            "--startup-round-divisor",
        ),
        (&["--nodes", "4", "--base-port", "65534"], "--base-port"),
        (&["--nodes", "4", "--cluster-id", " "], "--cluster-id"),
    ];
    for (args, flag) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c");
        let o = Command::new(BIN)
            .arg("init-cluster")
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?} names {flag}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        let written = std::fs::read_dir(&out).map_or(0, |d| d.count());
        assert_eq!(written, 0, "{args:?} wrote nothing");
    }
}

/// What is valid but risky is said in both outputs: a key others can read, and a
/// cluster too small to tolerate a single faulty member.
#[test]
fn warnings_reach_the_json_output_too() {
    let d = tempfile::tempdir().unwrap();
    let st = Command::new(BIN)
        .args([
            "init-cluster",
            "--nodes",
            "3",
            "--base-port",
            "7300",
            "--out",
        ])
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let key = d.path().join("node-1.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let cfg = d.path().join("node-1.toml");
    let (code, out, err) = validate(&cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("WARNING: key file is readable"), "{out}");
    assert!(out.contains("tolerates no faulty"), "{out}");
    let o = Command::new(BIN)
        .args(["validate", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(warnings.len(), 2, "{v}");
    assert!(warnings[0].contains("chmod 600"), "{v}");
    assert!(warnings[1].contains("3 member(s)"), "{v}");
}

/// Files that parse and whose every field is fine alone, but that cannot work together:
/// two members at one address, an API on a peer port, a /p2p part naming another key.
#[test]
fn addresses_that_clash_are_refused() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cluster = d.path().join("cluster.toml");
    let original = std::fs::read_to_string(&cluster).unwrap();
    edit(&cluster, |t| t.replacen("/tcp/7101\"", "/tcp/7100\"", 1));
    let (code, _, err) = validate(&d.path().join("node-1.toml"));
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("member[1].addresses[0]") && err.contains("member[0]'s address"),
        "{err}"
    );
    std::fs::write(&cluster, &original).unwrap();

    // node-2's peer id on node-1's address.
    let key2 = original
        .split("[[member]]")
        .nth(2)
        .and_then(|m| m.split("public_key = \"").nth(1))
        .and_then(|k| k.split('"').next())
        .unwrap()
        .to_owned();
    let id2 = bftime_crypto::PublicKey::from_hex(&key2)
        .unwrap()
        .to_peer_id();
    edit(&cluster, |t| {
        t.replacen("/tcp/7100\"", &format!("/tcp/7100/p2p/{id2}\""), 1)
    });
    let (code, _, err) = validate(&d.path().join("node-1.toml"));
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("member[0].addresses[0]") && err.contains("not this member's key"),
        "{err}"
    );
    std::fs::write(&cluster, &original).unwrap();

    let node = d.path().join("node-1.toml");
    edit(&node, |t| {
        t.replacen(
            "api_listen = \"127.0.0.1:7104\"",
            "api_listen = \"127.0.0.1:7100\"",
            1,
        )
    });
    let (code, _, err) = validate(&node);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("field `api_listen`") && err.contains("clash"),
        "{err}"
    );
}

/// The cluster file passed where the node file goes: the fix says so.
#[test]
fn a_cluster_file_given_as_the_node_file_is_recognised() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let (code, _, err) = validate(&d.path().join("cluster.toml"));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("fix: this is a cluster file"), "{err}");
}

/// Every parameter the analysis relies on that is out of range says how to fix it.
#[test]
fn out_of_range_parameters_come_with_a_fix() {
    for (line, field) in [
        ("precision_ms = 0", "precision_ms"),
        ("round_period_ms = 5", "round_period_ms"),
        ("max_drift_ppm = -1.0", "max_drift_ppm"),
        ("startup_round_divisor = 0", "startup_round_divisor"),
    ] {
        let d = tempfile::tempdir().unwrap();
        init(d.path());
        let key = line.split(' ').next().unwrap();
        edit(&d.path().join("cluster.toml"), |t| {
            let old = t.lines().find(|l| l.starts_with(key)).unwrap().to_owned();
            t.replacen(&old, line, 1)
        });
        let (code, _, err) = validate(&d.path().join("node-1.toml"));
        assert_eq!(code, 78, "{line}: {err}");
        assert!(err.contains(&format!("field `{field}`")), "{line}: {err}");
        assert!(err.contains("\n  fix: "), "{line} has a fix: {err}");
    }
}

/// A reader that went away (`bftime keygen | head -1`, a script that stopped reading) is
/// no crash: the command does its work and exits with its own code, not a panic's 101.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() > 0,
        "the key was written"
    );
}

/// A node listens on an address, not a name (member addresses may be names); Π below
/// what agreement can keep, and a listen port that peers do not dial, are warned
/// about; a drift bound the slew rate cannot cover names max_drift_ppm and its limit.
#[test]
fn listen_names_tiny_precision_mismatched_ports_and_huge_drift() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cfg = d.path().join("node-1.toml");
    edit(&cfg, |t| {
        t.replace("/ip4/127.0.0.1/tcp/7100", "/dns4/localhost/tcp/7100")
    });
    let (code, _, err) = validate(&cfg);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("`listen[0]`") && err.contains("names a host"),
        "{err}"
    );

    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let cfg = d.path().join("node-1.toml");
    edit(&d.path().join("cluster.toml"), |t| {
        t.replace("precision_ms = 200", "precision_ms = 1")
    });
    edit(&cfg, |t| t.replace("/tcp/7100", "/tcp/7109"));
    let (code, out, err) = validate(&cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("precision_ms = 1 is below"), "{out}");
    assert!(out.contains("listens on port(s) [7109]"), "{out}");

    let d = tempfile::tempdir().unwrap();
    init(d.path());
    edit(&d.path().join("cluster.toml"), |t| {
        t.replace("max_drift_ppm = 200.0", "max_drift_ppm = 50000.0")
    });
    let (code, _, err) = validate(&d.path().join("node-1.toml"));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("`max_drift_ppm`"), "{err}");
    assert!(err.contains("below 2500"), "{err}");
    assert!(!err.contains("max_slew"), "{err}");
}
